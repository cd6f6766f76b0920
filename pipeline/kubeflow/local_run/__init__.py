"""`imgpipe kfp run-local`: a compiled package run on this machine as its backend would run it.

executor_input.py builds each task's ExecutorInput and substitutes the container's placeholders
(KFP's driver and launcher, Vertex AI's form as TFX's entrypoint reads it); store.py is the
artifact store, executions and cache kept under the pipeline root across runs, and evaluates
resolver queries; runner.py walks the DAG and runs each container's own command.
"""
