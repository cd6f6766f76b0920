"""The Dockerfile's build-time check enforces the versions pyproject.toml pins (no Docker here)."""

import ast
import re
from pathlib import Path

import tomli  # pytest's own TOML reader on Python 3.10

ROOT = Path(__file__).resolve().parent.parent
# The stack the image must hold; the project's other dependencies are not in the base image.
STACK = ("tfx", "apache-beam", "tensorflow", "tf-keras", "kfp", "kfp-pipeline-spec",
         "tensorflow-serving-api")


def _pyproject_pins() -> dict[str, str]:
    dependencies = tomli.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^,;\s]+)", requirement.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _dockerfile_literal(name: str):
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(rf"\b{name} = ([^;]+);", text)
    assert match, f"the Dockerfile's version check has no {name}"
    return ast.literal_eval(match.group(1))


def test_the_image_check_enforces_exactly_pyprojects_pins_of_the_stack():
    pins = _pyproject_pins()
    assert set(STACK) <= set(pins)
    assert _dockerfile_literal("PINS") == {name: pins[name] for name in STACK}


def test_the_image_checks_the_cuda_the_docs_name_and_this_tensorflow_is_built_for():
    import tensorflow as tf

    cuda = _dockerfile_literal("CUDA")
    assert cuda == tf.sysconfig.get_build_info()["cuda_version"]  # TF 2.16.2's wheel: 12.3
    assert f"CUDA {cuda}" in (ROOT / "docs" / "kubeflow-vertex.md").read_text()


def test_the_image_installs_without_resolving_and_then_checks():
    text = (ROOT / "Dockerfile").read_text()
    install = text.index("pip install --no-deps .")
    assert install < text.index("PINS = ") < text.index("import components, trainer.run")
