"""Clients of TF Serving (or `imgpipe serve`): predict, model status and metadata.

- `grpc_client`: the gRPC client, with deadlines, retries on UNAVAILABLE, batches and TLS.
- `rest_client`: the same calls over TF Serving's REST API, standard library only.
- `results`: what both ask for (ModelTarget) and return (Prediction, VersionStatus, ...).

Named `grpc_client`, not `grpc`, so no module here is named like a package it imports. The client
never imports the server: it is what users of a deployed TF Serving need.
"""
