"""The pipeline's definition (`pipeline.py`, `config.py`) and the parts around it: running it on
this machine (`local/`), reading runs back (`results/`), Kubeflow and Vertex (`kubeflow/`), and
the command-line tool (`cli/`)."""
