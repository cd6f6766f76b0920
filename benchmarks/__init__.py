"""imgpipe's benchmarks: `python -m benchmarks.train`, `benchmarks.ingest`, `benchmarks.serving`.

Run from the repository's root; each writes JSON and Markdown, with the date and the machine, to
`--output` (`benchmarks/results/` for the committed results). What each figure means and the
latest results are in `benchmarks/README.md`. `machine`, `fixtures`, `roofline` and
`train_report` are helpers the three share.
"""

import os

# tf_keras (Keras 2) is the Keras the trainer builds on: chosen before any benchmark loads
# TensorFlow, here so that it is decided in one place for all of them.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
