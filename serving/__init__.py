"""Using the pushed model: TF Serving's protocols, clients, a local server and its configuration.

- `client` (gRPC) and `rest_client` (REST): predict, model status and metadata, with deadlines,
  retries on UNAVAILABLE, batches and TLS; `results` holds what both return.
- `server` (gRPC services), `rest` (REST API), `service` (the calls on TF Serving's protos),
  `inference` (Predict on one version), `manager` (loading, switching and unloading versions),
  `servable` (one loaded version), `versions` (which versions a base path holds and serves).
- `config`: TF Serving's model config and batching parameters files; `tls`: certificates.
"""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
