"""The custom properties TFLiteExport records on its TFLiteModels; the pusher and summary read
them."""

ACCEPTED = "accepted_formats"  # JSON list of the formats within the tolerance, e.g. ["float16"]
COMPARISON = "comparison"  # JSON: accuracy, size and latency of each format and the SavedModel
