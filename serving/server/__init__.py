"""A local model server on TF Serving's gRPC services and REST API, and TF Serving's config files.

- `server`: the gRPC services and the process's two ports; `rest`: the REST API.
- `service`: TF Serving's three calls on a registry of models, shared by both front ends.
- `inference`: Predict and metadata on one loaded version, with TF Serving's checks and codes.
- `manager`: loading, switching and unloading versions; `servable`: one loaded version;
  `versions`: the version policy.
- `config`: TF Serving's model config and batching parameters files.
"""
