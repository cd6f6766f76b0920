"""Device choices for the Trainer: mixed precision, XLA and the distribution strategy.

`plan_devices` decides, from the requested `DeviceConfig` and the names of the visible GPUs; it
is pure, so tests pass fake names. `apply_plan` (or `devices_applied`) then sets Keras' global
precision policy and returns the `tf.distribute.Strategy` to build the model under. What 'auto'
resolves to:

| visible GPUs | precision     | XLA                   | strategy                                 |
| ------------ | ------------- | --------------------- | ---------------------------------------- |
| 0 (CPU)      | float32       | the optimizer update  | default (`tf.distribute.get_strategy()`) |
| 1            | mixed_float16 | the whole step        | default                                  |
| 2 or more    | mixed_float16 | the whole step        | `tf.distribute.MirroredStrategy`         |

Why: float16 and XLA's fusion pay off on GPUs. The CPU stays in float32, so a run's accuracy never
depends on the CPU it landed on; its optimizer update is still compiled, because XLA fuses
RMSprop's element-wise passes over each variable into one (tf_keras does that only with a GPU).
The whole step is not compiled when the model holds ops XLA cannot compile (the affine warp
behind rotation, shift, shear and zoom has no XLA kernel in TF 2.16). Every choice can be
overridden; an override emulated on this machine (mixed precision on a CPU without the
instructions) is logged as a warning. One thing 'auto' never does: train on the CPU when the
package promised the Trainer GPUs (`require_gpus`, set by `imgpipe compile --gpus`); a node
whose driver or CUDA does not match the image shows no GPU, and `plan_devices` raises
`GpuMissingError` rather than train for hours on the CPU.

The caller builds the model after `apply_plan` (a layer takes the policy when constructed), inside
`strategy.scope()`, and gives `plan.compilation` to `trainer.model.compile_model`. The output
layer keeps `dtype=OUTPUT_DTYPE`: the loss needs float32 precision and the serving signature
promises float32 probabilities. The policy is process-global; `devices_applied` restores the
previous one on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from trainer.configs import reject_unknown_keys

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
XLA_CHOICES = ("auto", "on", "off")
STRATEGIES = ("auto", "mirrored", "default")

# The output layer's dtype under any policy: the loss and the served probabilities need float32.
OUTPUT_DTYPE = "float32"

_STRATEGY_LABELS = {"mirrored": "MirroredStrategy", "default": "default strategy"}


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class DeviceConfig:
    """What the user asks for; 'auto' lets `plan_devices` decide from the visible GPUs.

    `require_gpus`: the GPUs the Trainer's node was promised (0: none promised, the CPU will do).
    """

    precision: str = "auto"
    xla: str = "auto"
    strategy: str = "auto"
    require_gpus: int = 0

    def __post_init__(self) -> None:
        _check_choice("devices.precision", self.precision, PRECISIONS)
        _check_choice("devices.xla", self.xla, XLA_CHOICES)
        _check_choice("devices.strategy", self.strategy, STRATEGIES)
        if not isinstance(self.require_gpus, int) or self.require_gpus < 0:
            raise ValueError(f"devices.require_gpus must be an integer >= 0; got "
                             f"{self.require_gpus!r}")

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly dict (it travels inside the hyperparameters' `custom_config`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DeviceConfig:
        """The inverse of `to_config`; unknown keys are an error, not silently dropped."""
        reject_unknown_keys(cls, config, "device settings")
        return cls(**config)


class GpuMissingError(RuntimeError):
    """The Trainer was promised GPUs and TensorFlow sees fewer: it refuses to train."""


@dataclasses.dataclass(frozen=True)
class Compilation:
    """How a model is compiled: XLA for the whole training step (`model.compile(jit_compile=)`)
    and XLA for the optimizer's update alone."""

    jit_compile: bool = False
    xla_update: bool = False


NO_XLA = Compilation()  # the default of the functions that compile a model


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    """The resolved decision: what `apply_plan` sets and what `model.compile` is given."""

    precision_policy: str
    jit_compile: bool
    strategy_name: str
    gpus: int
    # XLA for the optimizer's update alone (see the module's docstring); implied by jit_compile.
    xla_update: bool = False

    @property
    def compilation(self) -> Compilation:
        """What `trainer.model.compile_model` is given."""
        return Compilation(jit_compile=self.jit_compile, xla_update=self.xla_update)

    def __post_init__(self) -> None:
        _check_choice("DevicePlan.precision_policy", self.precision_policy, PRECISIONS[1:])
        _check_choice("DevicePlan.strategy_name", self.strategy_name, STRATEGIES[1:])
        if self.gpus < 0:
            raise ValueError(f"gpus must be at least 0, got {self.gpus}")

    def describe(self) -> str:
        """One line for the log, e.g. '2 GPUs: mixed_float16, XLA on, MirroredStrategy'."""
        where = "CPU" if self.gpus == 0 else f"{self.gpus} GPU{'s' if self.gpus > 1 else ''}"
        xla = ("XLA on" if self.jit_compile else
               "XLA for the optimizer update" if self.xla_update else "XLA off")
        return f"{where}: {self.precision_policy}, {xla}, {_STRATEGY_LABELS[self.strategy_name]}"

    def to_record(self) -> dict[str, Any]:
        """What the plan chose, as JSON for the model's metadata (history.json)."""
        return {"gpus": self.gpus, "precision": self.precision_policy,
                "xla": ("step" if self.jit_compile else
                        "optimizer update" if self.xla_update else "off"),
                "strategy": _STRATEGY_LABELS[self.strategy_name],
                "description": self.describe()}


def cpu_supports_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 instructions: `avx512_bf16` or `amx_bf16` among the flags of
    `/proc/cpuinfo` (or of the `cpuinfo` text given). False where that file does not exist."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def plan_devices(config: DeviceConfig, gpu_names: Sequence[str], *,
                 xla_compatible: bool = True, cpu_bfloat16: bool = True) -> DevicePlan:
    """Resolves `config` against the visible GPUs; pure apart from logging warnings.

    `xla_compatible=False` says the model holds ops XLA cannot compile (in-graph augmentation);
    'auto' then turns XLA off and 'on' raises ValueError. `cpu_bfloat16=False` says the CPU has no
    bfloat16 instructions (`cpu_supports_bfloat16()`): 'mixed_bfloat16' without a GPU is then
    logged as emulated and slow.

    Raises:
        GpuMissingError: `config.require_gpus` GPUs were promised and fewer are visible.
    """
    gpus = len(gpu_names)
    if gpus < config.require_gpus:
        seen = f"only {gpus}" if gpus else "none"
        raise GpuMissingError(
            f"the Trainer was promised {config.require_gpus} GPU(s) but TensorFlow sees {seen}; "
            "refusing to train on the CPU: check the node has the GPUs and an NVIDIA driver "
            "for the image's CUDA 12.3 (nvidia-smi in the pod), or compile with --gpus 0")

    precision = config.precision
    if precision == "auto":
        # float16 is fast only on GPUs (tensor cores); on the CPU it is emulated.
        precision = "mixed_float16" if gpus else "float32"
    elif precision == "mixed_float16" and not gpus:
        logger.warning("mixed_float16 was requested without a GPU: it works on the CPU but is "
                       "emulated and slower than float32")
    elif precision == "mixed_bfloat16" and not gpus and not cpu_bfloat16:
        logger.warning("mixed_bfloat16 was requested on a CPU without bfloat16 instructions "
                       "(AVX512_BF16 or AMX): it works but is emulated and slower than float32")

    if config.xla == "on" and not xla_compatible:
        raise ValueError("devices.xla is 'on' but the model has ops XLA cannot compile (in-graph "
                         "rotation, shift, shear and zoom use ImageProjectiveTransformV3, which "
                         "has no XLA kernel): set xla to 'auto' or 'off', or turn those off")
    if config.xla == "auto":
        # XLA's fusion pays off on GPUs; on the CPU it mostly adds compile time.
        jit_compile = bool(gpus) and xla_compatible
    else:
        jit_compile = config.xla == "on"

    strategy = config.strategy
    if strategy == "auto":
        strategy = "mirrored" if gpus > 1 else "default"
    elif strategy == "default" and gpus > 1:
        logger.warning("the default strategy was requested with %d GPUs: only the first is used",
                       gpus)

    return DevicePlan(precision_policy=precision, jit_compile=jit_compile,
                      strategy_name=strategy, gpus=gpus, xla_update=config.xla != "off")


def visible_gpus() -> list[str]:
    """The names of the GPUs TensorFlow can see, e.g. ['/physical_device:GPU:0']."""
    return [device.name for device in tf.config.list_physical_devices("GPU")]


def apply_plan(plan: DevicePlan) -> tf.distribute.Strategy:
    """Sets the global Keras precision policy (process-wide) and returns the strategy to use."""
    tf.keras.mixed_precision.set_global_policy(plan.precision_policy)
    if plan.strategy_name == "mirrored":
        # With no arguments MirroredStrategy takes every visible GPU, or the CPU when there is none.
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def reset_policy() -> None:
    """Puts Keras' global precision policy back to the default, float32."""
    tf.keras.mixed_precision.set_global_policy("float32")


@contextlib.contextmanager
def devices_applied(plan: DevicePlan) -> Iterator[tf.distribute.Strategy]:
    """`apply_plan` for the duration of a block; the previous policy is restored on exit."""
    previous = tf.keras.mixed_precision.global_policy()
    try:
        yield apply_plan(plan)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
