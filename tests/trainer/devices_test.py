"""Device choices: the decision table with fake GPUs, and the real effect of a plan on this CPU."""

import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from trainer import devices
from trainer import model as model_lib
from trainer.devices import DeviceConfig, DevicePlan, plan_devices

NO_GPU: list[str] = []
ONE_GPU = ["/physical_device:GPU:0"]
TWO_GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """The policy is process-global: no test may leave a mixed one behind for the next."""
    yield
    devices.reset_policy()
    assert tf.keras.mixed_precision.global_policy().name == "float32"


# The decision: pure, tested with fake lists of GPU names.

@pytest.mark.parametrize("gpu_names,expected,description", [
    (NO_GPU, ("float32", False, "default"),
     "CPU: float32, XLA for the optimizer update, default strategy"),
    (ONE_GPU, ("mixed_float16", True, "default"), "1 GPU: mixed_float16, XLA on, default strategy"),
    (TWO_GPUS, ("mixed_float16", True, "mirrored"),
     "2 GPUs: mixed_float16, XLA on, MirroredStrategy"),
])
def test_auto_decision_table(gpu_names, expected, description):
    plan = plan_devices(DeviceConfig(), gpu_names)
    assert (plan.precision_policy, plan.jit_compile, plan.strategy_name) == expected
    assert plan.gpus == len(gpu_names)
    assert plan.describe() == description


@pytest.mark.parametrize("overrides,gpu_names,expected", [
    ({"precision": "float32"}, TWO_GPUS, ("float32", True, "mirrored")),
    ({"precision": "mixed_bfloat16"}, NO_GPU, ("mixed_bfloat16", False, "default")),
    ({"precision": "mixed_bfloat16"}, ONE_GPU, ("mixed_bfloat16", True, "default")),
    ({"precision": "mixed_float16"}, NO_GPU, ("mixed_float16", False, "default")),
    ({"xla": "on"}, NO_GPU, ("float32", True, "default")),
    ({"xla": "off"}, TWO_GPUS, ("mixed_float16", False, "mirrored")),
    # MirroredStrategy with one replica is valid on one GPU or on the CPU.
    ({"strategy": "mirrored"}, NO_GPU, ("float32", False, "mirrored")),
    ({"strategy": "mirrored"}, ONE_GPU, ("mixed_float16", True, "mirrored")),
    ({"strategy": "default"}, TWO_GPUS, ("mixed_float16", True, "default")),
])
def test_each_override_wins_over_auto(overrides, gpu_names, expected):
    plan = plan_devices(DeviceConfig(**overrides), gpu_names)
    assert (plan.precision_policy, plan.jit_compile, plan.strategy_name) == expected


def test_float16_on_the_cpu_is_allowed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        plan_devices(DeviceConfig(precision="mixed_float16"), NO_GPU)
    assert "mixed_float16 was requested without a GPU" in caplog.text


def test_default_strategy_on_two_gpus_warns_that_one_idles(caplog):
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        plan_devices(DeviceConfig(strategy="default"), TWO_GPUS)
    assert "only the first is used" in caplog.text


def test_auto_choices_log_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        for gpu_names in (NO_GPU, ONE_GPU, TWO_GPUS):
            plan_devices(DeviceConfig(), gpu_names)
    assert caplog.text == ""


def test_a_model_xla_cannot_compile_turns_auto_xla_off_and_refuses_on():
    assert not plan_devices(DeviceConfig(), TWO_GPUS, xla_compatible=False).jit_compile
    assert not plan_devices(DeviceConfig(xla="off"), TWO_GPUS, xla_compatible=False).jit_compile
    with pytest.raises(ValueError, match="XLA cannot compile"):
        plan_devices(DeviceConfig(xla="on"), TWO_GPUS, xla_compatible=False)


@pytest.mark.parametrize("config,gpu_names,xla_compatible,expected", [
    (DeviceConfig(), NO_GPU, True, (False, True)),
    # Augmentation keeps XLA off the step, not off the update: the update has no such op.
    (DeviceConfig(), TWO_GPUS, False, (False, True)),
    (DeviceConfig(), ONE_GPU, True, (True, True)),
    (DeviceConfig(xla="on"), NO_GPU, True, (True, True)),
    (DeviceConfig(xla="off"), NO_GPU, True, (False, False)),
    (DeviceConfig(xla="off"), TWO_GPUS, True, (False, False)),
])
def test_the_optimizer_update_is_compiled_unless_xla_is_off(config, gpu_names, xla_compatible,
                                                            expected):
    plan = plan_devices(config, gpu_names, xla_compatible=xla_compatible)
    assert (plan.jit_compile, plan.xla_update) == expected
    assert plan.compilation == devices.Compilation(*expected)


def _train_small(compilation: devices.Compilation) -> tuple[list[np.ndarray], tf.keras.Model]:
    tf.keras.utils.set_random_seed(0)
    model, _ = _small_model(None)
    model_lib.compile_model(model, 2, 1e-2, compilation)
    model.initial = model.get_weights()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return model.get_weights(), model


def test_compile_model_compiles_rmsprops_update_with_xla_on_the_cpu_with_the_same_result():
    """tf_keras resets `jit_compile` without a GPU; `compile_model` turns it back on, the
    XLA-compiled update really runs, and training ends where the unfused update ends."""
    fused, model = _train_small(devices.Compilation(xla_update=True))
    assert model.optimizer.jit_compile
    assert model.optimizer._update_step_xla.experimental_get_tracing_count() > 0
    plain, model = _train_small(devices.Compilation())
    assert not model.optimizer.jit_compile
    assert model.optimizer._update_step_xla.experimental_get_tracing_count() == 0
    assert tf.keras.optimizers.RMSprop(jit_compile=True).jit_compile is bool(
        devices.visible_gpus())  # what tf_keras does by itself
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused[0], model.initial[0], atol=1e-3)  # it trained


def test_the_compiled_update_runs_under_loss_scaling_and_mirrored_strategy():
    """The multi-GPU plan's pieces on one CPU replica: Keras wraps the optimizer for loss scaling,
    and the inner RMSprop's update is still the XLA-compiled one."""
    plan = plan_devices(DeviceConfig(precision="mixed_float16", strategy="mirrored"), NO_GPU)
    assert plan.xla_update
    with devices.devices_applied(plan) as strategy:
        with strategy.scope():
            model, _ = _small_model(devices.OUTPUT_DTYPE)
            model_lib.compile_model(model, 2, 1e-2, plan.compilation)
        x = np.random.default_rng(1).random((32, 4)).astype(np.float32)
        history = model.fit(x, (x[:, 0] > 0.5).astype(np.float32), epochs=2, verbose=0)
    inner = model.optimizer.inner_optimizer
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert inner.jit_compile and inner._update_step_xla.experimental_get_tracing_count() > 0
    assert all(np.isfinite(history.history["loss"]))


def test_in_graph_rotation_really_cannot_be_xla_compiled():
    """Why `xla_compatible` exists: if a TensorFlow upgrade fixes this, the guard can go."""
    from trainer.augment import RandomAffine

    rotation = RandomAffine(rotation_degrees=10.0, seed=1)
    rotate = tf.function(lambda images: rotation(images, training=True), jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        rotate(tf.zeros((1, 8, 8, 3)))


# Validation and the trip through JSON.

@pytest.mark.parametrize("overrides,message", [
    ({"precision": "float16"}, "devices.precision must be one of auto, float32, mixed_float16"),
    ({"precision": "bfloat16"}, "got 'bfloat16'"),
    ({"xla": True}, "devices.xla must be one of auto, on, off; got True"),
    ({"xla": "yes"}, "devices.xla"),
    ({"strategy": "tpu"}, "devices.strategy must be one of auto, mirrored, default"),
])
def test_invalid_values_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        DeviceConfig(**overrides)


@pytest.mark.parametrize("overrides,message", [
    ({"precision_policy": "auto"}, "DevicePlan.precision_policy"),
    ({"strategy_name": "auto"}, "DevicePlan.strategy_name"),
    ({"gpus": -1}, "gpus must be at least 0"),
])
def test_a_plan_is_always_resolved(overrides, message):
    values = dict(precision_policy="float32", jit_compile=False, strategy_name="default", gpus=0)
    with pytest.raises(ValueError, match=message):
        DevicePlan(**{**values, **overrides})


@pytest.mark.parametrize("config", [
    DeviceConfig(),
    DeviceConfig(precision="mixed_bfloat16", xla="off", strategy="mirrored"),
])
def test_round_trip_through_json(config):
    assert DeviceConfig.from_config(json.loads(json.dumps(config.to_config()))) == config


def test_missing_keys_take_their_defaults_and_unknown_keys_are_an_error():
    assert DeviceConfig.from_config({"xla": "off"}) == DeviceConfig(xla="off")
    with pytest.raises(ValueError, match="unknown device settings: gpu_count"):
        DeviceConfig.from_config({"xla": "off", "gpu_count": 2})


@pytest.mark.parametrize("require_gpus,gpu_names,seen", [
    (1, NO_GPU, "none"), (2, ONE_GPU, "only 1")])
def test_a_trainer_promised_gpus_refuses_to_train_without_them(require_gpus, gpu_names, seen):
    with pytest.raises(devices.GpuMissingError) as error:
        plan_devices(DeviceConfig(require_gpus=require_gpus), gpu_names)
    message = str(error.value)
    assert message.startswith(f"the Trainer was promised {require_gpus} GPU(s) but TensorFlow "
                              f"sees {seen}; refusing to train on the CPU")
    assert "CUDA 12.3" in message and "--gpus 0" in message and "\n" not in message


def test_the_gpus_promised_are_used_and_none_promised_lets_the_cpu_train():
    assert plan_devices(DeviceConfig(require_gpus=2), TWO_GPUS).strategy_name == "mirrored"
    assert plan_devices(DeviceConfig(require_gpus=1), TWO_GPUS).gpus == 2
    assert plan_devices(DeviceConfig(), NO_GPU).gpus == 0  # 'auto' on the CPU, as asked
    assert DeviceConfig.from_config({"require_gpus": 1}) == DeviceConfig(require_gpus=1)
    with pytest.raises(ValueError, match="require_gpus"):
        DeviceConfig(require_gpus=-1)


@pytest.mark.parametrize("gpu_names,record", [
    (NO_GPU, {"gpus": 0, "precision": "float32", "xla": "optimizer update",
              "strategy": "default strategy",
              "description": "CPU: float32, XLA for the optimizer update, default strategy"}),
    (TWO_GPUS, {"gpus": 2, "precision": "mixed_float16", "xla": "step",
                "strategy": "MirroredStrategy",
                "description": "2 GPUs: mixed_float16, XLA on, MirroredStrategy"}),
])
def test_the_plan_is_recorded_as_json(gpu_names, record):
    plan = plan_devices(DeviceConfig(), gpu_names)
    assert json.loads(json.dumps(plan.to_record())) == record


# The plan's real effect, on this machine.

def test_visible_gpus_asks_tensorflow_for_gpus_and_returns_their_names(monkeypatch):
    asked = []

    def fake_list(device_type):
        asked.append(device_type)
        return [tf.config.PhysicalDevice(name=name, device_type="GPU") for name in TWO_GPUS]

    monkeypatch.setattr(tf.config, "list_physical_devices", fake_list)
    assert devices.visible_gpus() == TWO_GPUS
    assert asked == ["GPU"]


@pytest.mark.parametrize("precision", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_apply_plan_sets_the_global_policy(precision):
    plan = plan_devices(DeviceConfig(precision=precision), NO_GPU)
    devices.apply_plan(plan)
    assert tf.keras.mixed_precision.global_policy().name == precision


def test_apply_plan_returns_the_default_strategy():
    strategy = devices.apply_plan(plan_devices(DeviceConfig(), NO_GPU))
    assert strategy is tf.distribute.get_strategy()
    assert not isinstance(strategy, tf.distribute.MirroredStrategy)


def test_apply_plan_returns_a_working_mirrored_strategy_on_the_cpu():
    strategy = devices.apply_plan(plan_devices(DeviceConfig(strategy="mirrored"), NO_GPU))
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    # Every visible GPU, or the CPU alone when there is none.
    assert strategy.num_replicas_in_sync == max(1, len(devices.visible_gpus()))
    with strategy.scope():
        variable = tf.Variable(1.0)
    assert isinstance(variable, tf.distribute.DistributedValues)


def test_devices_applied_restores_the_previous_policy_even_on_error():
    plan = plan_devices(DeviceConfig(precision="mixed_bfloat16"), NO_GPU)
    with pytest.raises(RuntimeError, match="boom"):
        with devices.devices_applied(plan) as strategy:
            assert tf.keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            assert strategy is tf.distribute.get_strategy()
            raise RuntimeError("boom")
    assert tf.keras.mixed_precision.global_policy().name == "float32"


def _small_model(output_dtype: str | None) -> tuple[tf.keras.Model, tf.keras.layers.Layer]:
    inputs = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(8, activation="relu", name="hidden")
    outputs = tf.keras.layers.Dense(1, activation="sigmoid", dtype=output_dtype,
                                    name="probability")(hidden(inputs))
    return tf.keras.Model(inputs, outputs), hidden


def test_under_mixed_bfloat16_the_hidden_layer_computes_in_bfloat16_and_the_output_is_float32():
    with devices.devices_applied(plan_devices(DeviceConfig(precision="mixed_bfloat16"), NO_GPU)):
        model, hidden = _small_model(devices.OUTPUT_DTYPE)
        unprotected, _ = _small_model(None)
    assert hidden.compute_dtype == "bfloat16"
    assert hidden.output.dtype == tf.bfloat16
    assert hidden.kernel.dtype == tf.float32  # variables stay float32 under a mixed policy
    x = np.ones((2, 4), np.float32)
    assert model(x).dtype == tf.float32
    assert model.predict(x, verbose=0).dtype == np.float32
    # Without the documented dtype the output layer follows the policy: the dtype is what matters.
    assert unprotected(x).dtype == tf.bfloat16


def test_the_whole_gpu_path_trains_on_the_cpu():
    """mixed_float16 + XLA + MirroredStrategy, as on a multi-GPU machine, with one CPU replica."""
    config = DeviceConfig(precision="mixed_float16", xla="on", strategy="mirrored")
    plan = plan_devices(config, NO_GPU)
    with devices.devices_applied(plan) as strategy:
        with strategy.scope():
            model, hidden = _small_model(devices.OUTPUT_DTYPE)
            model.compile(optimizer=tf.keras.optimizers.RMSprop(1e-3),
                          loss="binary_crossentropy", jit_compile=plan.jit_compile)
    assert model.distribute_strategy is strategy
    assert model.jit_compile
    # Keras 2's compile adds loss scaling itself under mixed_float16.
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert hidden.compute_dtype == "float16"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    assert model(x).dtype == tf.float32


# bfloat16 on the CPU: which CPUs have it, and the real model trains under it.

AVX512_NO_BF16 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n"


@pytest.mark.parametrize("cpuinfo,expected", [
    (AVX512_NO_BF16, False), (SAPPHIRE_RAPIDS, True), (ZEN4, True), ("", False),
    # A flag's name elsewhere in the file (a model name) is not a flag.
    ("model name\t: avx512_bf16 lookalike\nflags\t\t: fpu avx2\n", False),
])
def test_cpu_bfloat16_support_is_read_from_the_flags(cpuinfo, expected):
    assert devices.cpu_supports_bfloat16(cpuinfo) is expected


def test_cpu_bfloat16_support_reads_this_machines_cpuinfo():
    assert isinstance(devices.cpu_supports_bfloat16(), bool)


def test_bfloat16_on_a_cpu_without_bf16_instructions_warns_and_with_them_does_not(caplog):
    config = DeviceConfig(precision="mixed_bfloat16")
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        plan = plan_devices(config, NO_GPU, cpu_bfloat16=True)
    assert plan.precision_policy == "mixed_bfloat16" and not caplog.records
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        plan = plan_devices(config, NO_GPU, cpu_bfloat16=False)
    assert plan.precision_policy == "mixed_bfloat16"
    assert "emulated" in caplog.text and "AVX512_BF16" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        plan_devices(config, ONE_GPU, cpu_bfloat16=False)  # the GPU computes, not the CPU
    assert not caplog.records
    # auto never picks bfloat16 on the CPU, whatever its instructions.
    assert plan_devices(DeviceConfig(), NO_GPU, cpu_bfloat16=True).precision_policy == "float32"


def test_the_classifier_trains_under_mixed_bfloat16_on_the_cpu_with_a_float32_output():
    from trainer import model as model_lib
    from trainer.hparams import HParams

    hp = HParams(class_names=("a", "b"), image_size=75, weights="none", dense_units=(8,),
                 epochs=1, devices=DeviceConfig(precision="mixed_bfloat16"))
    assert hp.augment.geometric  # the affine augmentation runs in bfloat16 too
    plan = plan_devices(hp.devices, NO_GPU, xla_compatible=False)
    with devices.devices_applied(plan):
        model = model_lib.build_model(hp)
    assert model.get_layer("dense_0").compute_dtype == "bfloat16"
    assert model_lib.get_base(model).compute_dtype == "bfloat16"
    assert model.get_layer("probability").compute_dtype == "float32"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(8, 75, 75, 3), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    head_before = model.get_layer("dense_0").kernel.numpy().copy()
    base_before = [w.numpy().copy() for w in model_lib.get_base(model).weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(head_before, model.get_layer("dense_0").kernel.numpy())
    for before, weight in zip(base_before, model_lib.get_base(model).weights, strict=True):
        np.testing.assert_array_equal(before, weight.numpy())
    out = model(x, training=False)
    assert out.dtype == tf.float32 and np.all((out.numpy() >= 0) & (out.numpy() <= 1))
