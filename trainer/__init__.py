"""The Trainer's and Transform's module files, and the model they build.

`run.py` (the Trainer's `run_fn`) and `transform.py` (Transform's `preprocessing_fn`) are the two
entry points TFX loads; `contract.py` holds the names every other package shares with them.
"""
