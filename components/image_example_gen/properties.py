"""The custom properties the image ExampleGen records on its Examples artifact.

The data checks (components/data_validation) and the run summary and report read them.
"""

CLASS_NAMES = "class_names"  # JSON list, in label order
FILES_FOUND = "files_found"  # == INGESTED + QUARANTINED + SKIPPED
INGESTED = "ingested"
QUARANTINED = "quarantined"
QUARANTINED_PER_KIND = "quarantined_per_kind"  # JSON {kind: count}
INGESTED_PER_CLASS = "ingested_per_class"  # JSON {class: count}
QUARANTINE_REPORT = "quarantine_report"  # path of the quarantine file
SKIPPED = "skipped"  # system files (.DS_Store, Thumbs.db, hidden): not data, not quarantined
SKIPPED_REPORT = "skipped_report"  # path of the list of skipped files
FOLDERS_READ = "folders_read"  # JSON list of the folders read
SPAN = "span"  # recorded by TFX's ExampleGen driver
PREVIOUS_SPAN = "previous_span"
PREVIOUS_SPAN_IMAGES_PER_CLASS = "previous_span_images_per_class"  # JSON {class: count}
PREVIOUS_SPANS_READ = "previous_spans_read"  # "1,2": the previous window's spans
WINDOW = "window"
SPANS_READ = "spans_read"  # "2,3": the spans of this window present
INGESTED_PER_SPAN = "ingested_per_span"  # JSON {span: count}
