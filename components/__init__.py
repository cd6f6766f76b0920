"""Custom TFX components."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`components.DataVerdict`, `components.AuditFindings`, `components.EvalFeatures` and
    `components.TFLiteModels`, the import paths Kubeflow V2 derives from their TYPE_NAME.

    Lazy, so importing `components` does not import TFX.
    """
    if name == "DataVerdict":
        from components.data_validation.component import DataVerdict

        return DataVerdict
    if name == "AuditFindings":
        from components.data_audit.component import AuditFindings

        return AuditFindings
    if name == "EvalFeatures":
        from components.data_audit.component import EvalFeatures

        return EvalFeatures
    if name == "TFLiteModels":
        from components.tflite_export.component import TFLiteModels

        return TFLiteModels
    raise AttributeError(f"module 'components' has no attribute {name!r}")
