"""Serving tests' set-up: one small classifier exported once per session, in two versions.

`model_store` holds versions 1 and 2 of one InceptionV3 classifier at 75 px (random frozen base,
as tests/trainer/export_test.py builds it) that differ only in their head, so a test can tell
from an answer which version gave it. A random base's features are about 1e-3 in scale, so the
head's kernel is scaled up for probabilities to differ from image to image, and version 2's
columns are rolled by one, so it prefers another class. The reference answers are those of the
exported serving function itself, called in this process. Version 2 also carries TF Serving's
warmup file, as the pusher writes it.

The session's `server` serves both versions, with the labels stable=1 and canary=2, from a
models.config that `serving.server.config` wrote: the same ModelServerConfig file TF Serving reads.
"""

import dataclasses
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.serving_pusher.warmup import write_warmup_file
from pipeline.local.sample_data import render_image
from serving.server.config import BatchingOptions, read_model_config_file, write_serving_config
from serving.server.manager import ModelRegistry, ModelSource
from serving.server.server import ModelServer, ServerOptions
from serving.server.versions import VersionPolicy
from trainer import export
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams

SIZE = 75
CLASSES = ("cat", "dog", "fox")
MODEL = "clf"
HEAD_SCALE = 100.0


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    """Six encoded images: three shapes, JPEG and PNG, larger than the model's input."""
    encoded = {}
    for i, shape in enumerate(("circle", "cross", "star")):
        image = render_image(shape, 96, np.random.default_rng(i))
        for fmt in ("JPEG", "PNG"):
            buffer = io.BytesIO()
            image.save(buffer, format=fmt)
            encoded[f"{shape}.{fmt.lower()}"] = buffer.getvalue()
    return encoded


@dataclasses.dataclass(frozen=True)
class Exported:
    """The model store, and what each version's serving function answered in this process."""

    store: Path
    answers: dict[tuple[int, str], tuple[str, np.ndarray]]  # (version, image name) -> answer

    def expected(self, version: int, names: list[str]) -> tuple[list[str], np.ndarray]:
        """(classes, probabilities) of `version` for the named images, computed in process."""
        return ([self.answers[version, n][0] for n in names],
                np.stack([self.answers[version, n][1] for n in names]))


@pytest.fixture(scope="session")
def exported(transform_output, images, tmp_path_factory) -> Exported:
    """STORE/1 and STORE/2: SavedModels of the same classifier with different heads."""
    store = tmp_path_factory.mktemp("store")
    hp = HParams(class_names=CLASSES, image_size=SIZE, weights="none", dense_units=(16,),
                 augment=AugmentConfig.off())
    tf.keras.utils.set_random_seed(0)
    model = model_lib.build_model(hp)
    # export.export's two steps, with the functions traced once for both versions.
    module, signatures = export.build_serving_module(model, transform_output, CLASSES, SIZE)
    serve = signatures["serving_default"]
    head = model.get_layer("probability")
    kernel, bias = head.get_weights()
    names = list(images)
    answers = {}
    for version in (1, 2):
        head.set_weights([np.roll(kernel * HEAD_SCALE, version - 1, axis=1), bias])
        path = store / str(version)
        if version == 1:
            tf.saved_model.save(module, str(path), signatures=signatures)
        else:
            # Same graph, new weights (what retraining gives): version 1's files with the
            # variables written again, in seconds instead of a second full save.
            shutil.copytree(store / "1", path, ignore=shutil.ignore_patterns("variables"))
            tf.train.Checkpoint(root=module).write(str(path / "variables" / "variables"))
        # The very function saved, called in process: the reference every server answer meets.
        out = serve(image_bytes=tf.constant([images[n] for n in names]))
        for i, name in enumerate(names):
            answers[version, name] = (out["classes"][i].numpy().decode(),
                                      out["probabilities"][i].numpy())
    write_warmup_file(str(store / "2"), list(images.values())[:2], MODEL)
    return Exported(store, answers)


@pytest.fixture(scope="session")
def model_store(exported) -> Path:
    return exported.store


@pytest.fixture(scope="session")
def expected(exported) -> Callable[[int, list[str]], tuple[list[str], np.ndarray]]:
    return exported.expected


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture(scope="session")
def link_versions(model_store) -> Callable[[Path, tuple[int, ...]], Path]:
    """Makes BASE/<v> for the given versions (hard links into the store) and returns BASE."""

    def link(base: Path, versions: tuple[int, ...]) -> Path:
        base.mkdir(parents=True, exist_ok=True)
        for version in versions:
            shutil.copytree(model_store / str(version), base / str(version),
                            copy_function=_link_or_copy)
        return base

    return link


@pytest.fixture(scope="session")
def registry(link_versions, tmp_path_factory) -> Iterator[ModelRegistry]:
    """Both versions of MODEL, labelled stable=1 and canary=2, loaded from a models.config."""
    root = tmp_path_factory.mktemp("served")
    base = link_versions(root / MODEL, (1, 2))
    source = ModelSource(MODEL, str(base), VersionPolicy("specific", versions=(1, 2)),
                         {"stable": 1, "canary": 2})
    files = write_serving_config(root / "config", source, BatchingOptions())
    models = ModelRegistry(read_model_config_file(files.models_config), poll_seconds=0)
    models.load()
    yield models
    models.stop()


@pytest.fixture(scope="session")
def server(registry) -> Iterator[ModelServer]:
    """gRPC and REST on free ports of 127.0.0.1."""
    model_server = ModelServer(registry, ServerOptions(grpc_port=0, rest_port=0))
    model_server.start()
    yield model_server
    model_server.stop(grace_seconds=0)


@pytest.fixture(scope="session")
def grpc_address(server) -> str:
    return f"127.0.0.1:{server.grpc_port}"


@pytest.fixture(scope="session")
def rest_address(server) -> str:
    return f"127.0.0.1:{server.rest_port}"
