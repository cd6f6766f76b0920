"""Security promises that can be checked without a run: no unpickling, no secrets as parameters.

- Nothing untrusted is unpickled: a static scan (Python's own parser) of every product source
  file for pickle-family loads and their look-alikes; the scanner is itself tested on a snippet
  holding each pattern, so an empty result means something.
- Secrets never pass as component parameters (TFX records every exec property in ML Metadata):
  the pipeline `imgpipe run` builds, from the real command line with credentials planted in the
  environment, is compiled to TFX's IR; no parameter looks like a secret and no planted value
  appears anywhere in it. Credentials reach Beam and the cloud clients from the environment
  (Application Default Credentials), which the pipeline definition never copies.
- Beam arguments ARE part of the pipeline definition (so they land in ML Metadata too): the last
  test pins that fact, so no one mistakes them for a place to put a key.

Elsewhere: loopback by default in serving_load_test.py, TLS and mutual TLS in
tests/serving/tls_test.py, SHA-256 pinning of weights in bad_input_test.py, paths built from
data file names in ingest_paths_test.py.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("pipeline", "components", "serving", "trainer", "benchmarks")
UNPICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve",
              "marshal", "jsonpickle"}
RISKY_CALLS = {"read_pickle", "load_model", "unsafe_load", "full_load", "eval", "exec"}
# (file relative to the repository, finding) -> why it is safe. Empty: nothing is allowed yet.
ALLOWED: dict[tuple[str, str], str] = {}


def _findings(source: str) -> list[str]:
    """Each import of an unpickling module and each call that can run code from data."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(
                function, "id", "")
            keywords = {k.arg: k.value for k in node.keywords}
            pickled = keywords.get("allow_pickle")
            if isinstance(pickled, ast.Constant) and pickled.value is True:
                found.append(f"{name}(allow_pickle=True)")
            if name in RISKY_CALLS:
                found.append(f"{name}()")
            if name == "load" and isinstance(function, ast.Attribute) and getattr(
                    function.value, "id", "") == "yaml" and "Loader" not in keywords:
                found.append("yaml.load()")
            if name == "load" and isinstance(function, ast.Attribute) and getattr(
                    function.value, "id", "") == "torch":
                found.append("torch.load()")
    return found


def _product_files() -> list[Path]:
    return sorted(p for folder in PRODUCT for p in (REPO / folder).rglob("*.py"))


def test_the_scanner_finds_every_pattern():
    snippet = (
        "import pickle\nimport dill as d\nfrom cloudpickle import loads\nimport joblib\n"
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)\nimport yaml\n"
        "yaml.load(text)\nyaml.unsafe_load(text)\npd.read_pickle('x')\n"
        "tf.keras.models.load_model('m.h5')\neval(s)\ntorch.load('w.pt')\n"
        "yaml.load(text, Loader=yaml.SafeLoader)\nnp.load('a.npy')\n")
    assert _findings(snippet) == [
        "import pickle", "import dill", "from cloudpickle import", "import joblib",
        "load(allow_pickle=True)", "yaml.load()", "unsafe_load()", "read_pickle()",
        "load_model()", "eval()", "torch.load()"]


def test_no_product_code_unpickles_or_evaluates_data():
    files = _product_files()
    assert len(files) > 50  # the scan saw the product
    found = {(p.relative_to(REPO).as_posix(), f) for p in files
             for f in _findings(p.read_text(encoding="utf-8"))}
    assert found - set(ALLOWED) == set()


SECRET_KEY = re.compile(r"token|secret|passw|credential|private|api_?key|(^|_)key$", re.I)
SECRET_VALUE = re.compile(
    r"-----BEGIN|AKIA[0-9A-Z]{16}|ya29\.|eyJ[A-Za-z0-9_-]{10,}\.|\"type\": \"service_account\""
    r"|xox[abp]-|ghp_[A-Za-z0-9]{20,}|passw(or)?d\s*[=:]|[0-9a-fA-F]{32,}")
# Keys that match the pattern above but hold no secret.
ALLOWED_KEYS = {
    "label_key": "the name of the label feature in TFMA's EvalConfig",
    "weights_sha256": "the public digest a weights file is pinned to, not a credential",
}
CANARIES = {
    "GOOGLE_APPLICATION_CREDENTIALS": "/secrets/canary-sa-7f3a.json",
    "AWS_SECRET_ACCESS_KEY": "canarySecretAccessKey7f3a",
    "KFP_TOKEN": "canary-kfp-token-7f3a",
    "HF_TOKEN": "hf_canary7f3a",
}


def _leaves(value, key=""):
    """(key, scalar) pairs of a parameter, JSON strings opened up."""
    if isinstance(value, str):
        try:
            opened = json.loads(value)
        except ValueError:
            opened = None
        if isinstance(opened, dict | list):
            yield from _leaves(opened, key)
            return
    if isinstance(value, dict):
        for inner_key, inner in value.items():
            yield from _leaves(inner, str(inner_key))
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner, key)
    else:
        yield key, value


def test_no_component_parameter_is_or_holds_a_secret(cli, tmp_path, write_classes,
                                                     monkeypatch):
    """The pipeline `imgpipe run` builds (pinned weights, credentials planted in the
    environment), its parameters and its compiled IR, what the orchestrator stores."""
    import tensorflow as tf
    from tfx.dsl.compiler import compiler

    from pipeline.pipeline import create_pipeline
    from trainer.bases import file_sha256

    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    root = tmp_path
    data = write_classes(root / "data")
    weights = root / "base.h5"
    tf.keras.applications.MobileNetV2(include_top=False, weights=None,
                                      input_shape=(32, 32, 3)).save_weights(str(weights))
    captured = []

    def capture(config, layout, with_report=True):
        captured.append(config)
        raise AssertionError("captured")  # escapes main: the pipeline does not run

    with pytest.raises(AssertionError, match="captured"):
        cli("run", "--data", str(data), "--output", str(root / "out"), "--base",
            "mobilenet_v2", "--image-size", "32", "--weights", str(weights),
            "--weights-sha256", file_sha256(str(weights)), on_pipeline=capture)
    pipeline = create_pipeline(captured[0])
    suspicious = []
    for component in pipeline.components:
        for name, value in component.exec_properties.items():
            for key, leaf in _leaves(value, name):
                if key in ALLOWED_KEYS:
                    continue
                if SECRET_KEY.search(key) or SECRET_VALUE.search(str(leaf)):
                    suspicious.append((component.id, name, key, str(leaf)[:80]))
    assert suspicious == []
    compiled = compiler.Compiler().compile(pipeline)
    text = str(compiled) + compiled.SerializeToString().decode("latin-1")
    assert str(weights) in text  # the IR holds every parameter: the search below is real
    assert [v for v in CANARIES.values() if v in text] == []


def test_beam_arguments_are_recorded_with_the_pipeline():
    """Beam's flags are stored with the pipeline (and in ML Metadata): never put a key there;
    Beam and its runners read credentials from the environment."""
    from tfx.dsl.compiler import compiler

    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_pipeline
    from trainer.hparams import HParams

    config = PipelineConfig(pipeline_name="p", pipeline_root="/r", data_root="/d",
                            serving_model_dir="/s",
                            hparams=HParams(class_names=("a", "b"), weights="none"),
                            beam_pipeline_args=("--temp_location=/tmp/beam-7f3a",))
    assert "--temp_location=/tmp/beam-7f3a" in str(compiler.Compiler().compile(
        create_pipeline(config)))
