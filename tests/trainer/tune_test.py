"""The Tuner's search (`--tune`): trials train the head on the cache without the base, one cache
serves both poolings, the Trainer applies the best trial's values, and a bad space is refused."""

import io
import json
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.tuner import executor as tuner_executor
from trainer import bottleneck, contract, search_space, tune
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams
from trainer.run import with_tuned_values

SIZE = 75


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("a", "b"), image_size=SIZE, weights="none", dense_units=(8,),
                  augment=AugmentConfig.off(), epochs=2, early_stopping_patience=0, seed=3,
                  batch_size=4, input_scaling="inception")
    values.update(overrides)
    return HParams(**values)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_examples(path, n: int, seed: int) -> str:
    """Transform's output for `n` images: PNG bytes and labels, gzipped TFRecords."""
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i in range(n):
            label = i % 2
            pixels = rng.integers(0, 120, (SIZE, SIZE, 3)).astype(np.uint8) + 100 * label
            example = tf.train.Example(features=tf.train.Features(feature={
                contract.TRANSFORMED_IMAGE: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[_png(pixels)])),
                contract.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
            writer.write(example.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("examples")
    return _write_examples(folder / "train.gz", 16, 0), _write_examples(folder / "eval.gz", 8, 1)


def _fn_args(examples, tmp_path, trials: int, algorithm: str = "random",
             space: search_space.SearchSpace | None = None, **overrides):
    config = search_space.TuneConfig(trials=trials, algorithm=algorithm,
                                     space=space or search_space.SearchSpace(
                                         dense_units=(4, 8), head_batch_size=(4, 8)))
    return types.SimpleNamespace(
        custom_config={contract.HPARAMS_KEY: _hparams(**overrides).to_config(),
                       contract.TUNE_KEY: config.to_config()},
        schema_path=None, train_files=[examples[0]], eval_files=[examples[1]],
        working_dir=str(tmp_path))


def test_avg_pooling_from_the_flattened_cache_is_the_bases_global_average(examples, tmp_path):
    hp = _hparams()
    tf.keras.utils.set_random_seed(0)  # random weights: the same for the two bases built
    features = tune.write_features(hp, [examples[0]], [examples[1]], str(tmp_path))
    tf.keras.utils.set_random_seed(0)
    model = model_lib.build_model(hp)
    base = model_lib.get_base(model)
    images = next(iter(tf.data.TFRecordDataset([examples[1]], compression_type="GZIP").map(
        lambda s: tf.io.decode_png(tf.io.parse_single_example(s, {
            contract.TRANSFORMED_IMAGE: tf.io.FixedLenFeature([], tf.string)})[
            contract.TRANSFORMED_IMAGE], channels=3)).batch(8)))
    maps = base(model.get_layer("base_preprocess")(images), training=False).numpy()
    flat, labels = next(iter(features.dataset("eval", "flatten", 8, False, 0)))
    avg, _ = next(iter(features.dataset("eval", "avg", 8, False, 0)))
    assert features.dim("flatten") == 3 * 3 * 768 and features.dim("avg") == 768
    np.testing.assert_allclose(flat.numpy(), maps.reshape(8, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(avg.numpy(), maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), [0, 1] * 4)
    assert np.abs(maps).max() > 0
    # Held in memory for the trials, with the average computed once: the same batches.
    assert features.hold()
    for pooling, expected in (("flatten", flat), ("avg", avg)):
        held, held_labels = next(iter(features.dataset("eval", pooling, 8, False, 0)))
        np.testing.assert_allclose(held.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(held_labels.numpy(), labels.numpy())


def test_the_search_runs_on_the_cache_and_no_trial_uses_the_base(examples, tmp_path,
                                                                  monkeypatch, capsys):
    calls = {"build_base": 0, "write_cache": 0}
    real_build_base, real_write_cache = model_lib.build_base, bottleneck.write_cache

    def counting_build_base(*args, **kwargs):
        calls["build_base"] += 1
        return real_build_base(*args, **kwargs)

    def counting_write_cache(*args, **kwargs):
        calls["write_cache"] += 1
        return real_write_cache(*args, **kwargs)

    monkeypatch.setattr(model_lib, "build_base", counting_build_base)
    monkeypatch.setattr(bottleneck, "write_cache", counting_write_cache)
    result = tune.tuner_fn(_fn_args(examples, tmp_path, trials=4))
    tuner = result.tuner
    real_cache = tuner._cache

    def cache_then_no_base(directory):
        features = real_cache(directory)

        def refuse(*args, **kwargs):
            raise AssertionError("a trial used the base")

        # From here on, any way to the base's forward pass fails the trial that takes it.
        for module, name in ((model_lib, "build_base"), (model_lib, "build_features"),
                             (model_lib, "build_model"),
                             (bottleneck, "feature_model"), (bottleneck, "write_cache")):
            monkeypatch.setattr(module, name, refuse)
        return features

    tuner._cache = cache_then_no_base
    tuner.search(**result.fit_kwargs)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4
    assert [t.status for t in trials] == ["COMPLETED"] * 4, [t.message for t in trials]
    assert calls == {"build_base": 1, "write_cache": 2}  # one base, one pass per split
    assert all(0.0 <= t.score <= 1.0 for t in trials)
    assert {t.hyperparameters.values["pooling"] for t in trials} <= {"flatten", "avg"}
    record = tuner_executor.describe_trials(tuner, 1.0)
    assert [t["trial_id"] for t in record["trials"]] == sorted(tuner.oracle.trials)
    assert all(t["seconds"] > 0 and t["epochs"] == 2 for t in record["trials"])
    assert record["best_trial_id"] == tuner.oracle.get_best_trials(1)[0].trial_id
    assert record["cache"]["train"]["records"] == 16 and record["cache"]["eval"]["records"] == 8
    assert record["cache"]["in_memory"]
    assert tuner.features is None  # the cache's folder is removed after the search
    assert "Trial" not in capsys.readouterr().out  # KerasTuner's prints stay off the terminal


@pytest.mark.parametrize("algorithm", ["bayesian", "hyperband"])
def test_each_algorithm_stops_at_the_trials_asked(examples, tmp_path, algorithm):
    result = tune.tuner_fn(_fn_args(examples, tmp_path, trials=3, algorithm=algorithm))
    result.tuner.search(**result.fit_kwargs)
    trials = list(result.tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials), \
        [t.message for t in trials]


def test_the_trainer_takes_the_best_trials_values(examples, tmp_path):
    space = search_space.SearchSpace(dense_units=(4, 16), dropout=(0.1, 0.4),
                                     learning_rate=(1e-4, 1e-2), head_batch_size=(4, 8))
    result = tune.tuner_fn(_fn_args(examples, tmp_path, trials=3, space=space))
    result.tuner.search(**result.fit_kwargs)
    best = result.tuner.get_best_hyperparameters()[0]
    # What TFX's Tuner writes and its Trainer executor gives run_fn as `fn_args.hyperparameters`.
    config = json.loads(json.dumps(best.get_config()))
    for cached in (False, True):
        hp = with_tuned_values(_hparams(bottleneck_cache=cached), config)
        values = best.values
        assert hp.dense_units == (values["dense_units"],)
        assert hp.dropout_rate == pytest.approx(values["dropout"])
        assert hp.learning_rate == pytest.approx(values["learning_rate"])
        assert hp.pooling == values["pooling"]
        assert hp.head_batch_size == values["head_batch_size"]
        assert (hp.cache_batch_size if cached else hp.batch_size) == values["head_batch_size"]
    assert with_tuned_values(_hparams(), None) == _hparams()


@pytest.mark.parametrize(("text", "says"), [
    ('{"dense_units": [0]}', "dense_units must be whole numbers from 1 to 65536"),
    ('{"dropout": [0.2, 1.5]}', "dropout must lie in [0, 1)"),
    ('{"learning_rate": [0.1, 0.001]}', "low <= high"),
    ('{"learning_rate": [0, 0.1]}', "learning_rate must lie in (0, 1]"),
    ('{"pooling": ["max"]}', "pooling must be among flatten, avg"),
    ('{"units": [8]}', "unknown key(s) units"),
    ('{"dense_units": 512}', "dense_units must be a JSON list"),
    ('{"head_batch_size": []}', "one or more different values"),
    ('[1, 2]', "must be a JSON object"),
    ('{"dropout": [0.1', "is not JSON"),
])
def test_a_bad_space_file_says_what_is_wrong(tmp_path, text, says):
    path = tmp_path / "space.json"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        search_space.read_space(str(path))
    assert says in str(raised.value)


def test_a_space_file_fixes_values_and_keeps_defaults(tmp_path):
    path = tmp_path / "space.json"
    path.write_text('{"pooling": ["avg"], "dropout": [0.3]}')
    space = search_space.read_space(str(path))
    assert space.pooling == ("avg",) and space.dropout == (0.3, 0.3)
    assert space.dense_units == search_space.SearchSpace().dense_units
    declared = tune.declare(space)
    assert declared.get("pooling") == "avg" and declared.get("dropout") == 0.3
    assert search_space.SearchSpace.from_config(space.to_config()) == space


@pytest.mark.parametrize("memory, eager", [(1 << 50, False), (1, True)])
def test_trials_run_eagerly_when_compiled_ones_could_keep_too_much(examples, tmp_path,
                                                                   monkeypatch, memory, eager):
    monkeypatch.setattr(tune, "physical_memory", lambda: memory)
    compiled = []
    real_compile = model_lib.compile_model

    def compile_model(model, *args, **kwargs):
        real_compile(model, *args, **kwargs)
        compiled.append(model)

    monkeypatch.setattr(model_lib, "compile_model", compile_model)
    result = tune.tuner_fn(_fn_args(examples, tmp_path, trials=2))
    result.tuner.search(**result.fit_kwargs)
    trials = list(result.tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED"] * 2, [t.message for t in trials]
    assert result.tuner.record["trials_run_eagerly"] is eager
    assert [m.run_eagerly for m in compiled] == [eager, eager]
    # The bound: per trial the widest first kernel (flatten's 100 inputs, 8 units) and its slot.
    space = search_space.SearchSpace(dense_units=(4, 8), head_batch_size=(4, 8))
    widths = types.SimpleNamespace(dim=lambda pooling: 100 if pooling == "flatten" else 10)
    assert tune.kept_bytes(space, widths, trials=2) == 2 * 2 * 4 * 100 * 8
