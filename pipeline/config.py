"""Typed pipeline configuration: built by a runner, consumed by `create_pipeline`."""

from __future__ import annotations

import dataclasses

from components.image_example_gen.component import ImageLayout
from components.image_example_gen.executor import IngestSettings
from trainer.contract import DEFAULT_MAX_ROWS
from trainer.hparams import HParams
from trainer.search_space import TuneConfig

DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory",)


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """When a trained model is blessed: an absolute accuracy bound, and not worse than the baseline.

    Against the latest blessed model, on the same eval images, McNemar's exact one-sided test:
    refused when significantly worse at level `alpha` overall, or at `alpha / classes`
    (Bonferroni) on any class's images; a drop within noise passes. The first run, with no
    blessed model yet, is judged on `accuracy_threshold` alone.
    """

    accuracy_threshold: float = 0.8
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ValueError(f"accuracy_threshold must be in [0, 1], got {self.accuracy_threshold}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")


@dataclasses.dataclass(frozen=True)
class PushConfig:
    """How blessed models are checked and published in TF Serving's `<model>/<version>/` layout.

    `infra_validation` is "local" (ModelLoadCheck: a fresh Python process loads the model and
    serves eval images) or "docker" (TFX's InfraValidator: the real `tensorflow/serving` image,
    tag `serving_image_tag`, started with a local Docker engine).
    """

    keep_versions: int = 5
    warmup_requests: int = 8
    infra_validation: str = "local"
    serving_image_tag: str = "latest"

    def __post_init__(self) -> None:
        if self.infra_validation not in ("local", "docker"):
            raise ValueError("infra_validation must be 'local' or 'docker', got "
                             f"{self.infra_validation!r}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be at least 1, got {self.keep_versions}")
        if not 0 <= self.warmup_requests <= 1000:
            raise ValueError(f"warmup_requests must be in [0, 1000], got {self.warmup_requests}")


@dataclasses.dataclass(frozen=True)
class DataCheckConfig:
    """How new data is checked against the previous span before a model trained on it is pushed.

    `max_class_drift` bounds the L-infinity distance between the class shares of this span and
    the previous one (0.25: no class's share may move by more than 25 points).
    """

    max_class_drift: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.max_class_drift <= 1.0:
            raise ValueError(f"max_class_drift must be in (0, 1], got {self.max_class_drift}")


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """The data audit (DataAudit, after the ExampleGen): on unless `enabled` is False.

    `max_leakage` is the largest share of eval images that may have a copy in train before
    DataGate fails the data (and so the push): each leaked image answers from memory, so the
    eval accuracy is overstated by up to that share. `drop_leaked_eval` instead evaluates on
    the eval split without those images (DropLeakedEval), and leakage no longer stops the push.
    """

    enabled: bool = True
    max_leakage: float = 0.05
    drop_leaked_eval: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_leakage <= 1.0:
            raise ValueError(f"max_leakage must be in [0, 1], got {self.max_leakage}")
        if self.drop_leaked_eval and not self.enabled:
            raise ValueError("drop_leaked_eval needs the audit, which finds the leaks")


@dataclasses.dataclass(frozen=True)
class TFLiteConfig:
    """TFLite models made of the blessed model (TFLiteExport): none unless `formats` names some.

    Each of `formats` ('float16', 'int8') is pushed beside the SavedModel only when its accuracy
    on the eval split is at most `tolerance_points` percentage points below the SavedModel's.
    """

    formats: tuple[str, ...] = ()
    tolerance_points: float = 1.0

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in ("float16", "int8")]
        if unknown:
            raise ValueError(f"TFLite formats must be float16 or int8, got {unknown}")
        if not 0.0 <= self.tolerance_points <= 100.0:
            raise ValueError(f"tolerance_points must be in [0, 100], got {self.tolerance_points}")


@dataclasses.dataclass(frozen=True)
class ServingLimits:
    """What the exported model refuses, baked into its graph (so TF Serving enforces it too).

    `max_pixels`: the largest image Transform's graph decodes, checked from the header first;
    None takes the ingest's `max_pixels`. `max_rows`: images per request to `serving_default`.
    """

    max_pixels: int | None = None
    max_rows: int = DEFAULT_MAX_ROWS

    def __post_init__(self) -> None:
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {self.max_rows}")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything `create_pipeline` needs; paths may be local or any URI TensorFlow can write."""

    pipeline_name: str
    pipeline_root: str
    data_root: str
    serving_model_dir: str
    hparams: HParams
    gate: GateConfig = GateConfig()
    push: PushConfig = PushConfig()
    layout: ImageLayout = ImageLayout()
    ingest: IngestSettings = IngestSettings()
    data: DataCheckConfig = DataCheckConfig()
    audit: AuditConfig = AuditConfig()
    serving: ServingLimits = ServingLimits()
    tflite: TFLiteConfig = TFLiteConfig()
    tune: TuneConfig = TuneConfig()
    beam_pipeline_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    enable_cache: bool = True

    @property
    def serving_max_pixels(self) -> int:
        """The exported graph's pixel limit: the serving limit's own, or the ingest's."""
        return self.serving.max_pixels or self.ingest.max_pixels
