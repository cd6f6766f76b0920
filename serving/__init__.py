"""Using the pushed model: TF Serving's protocols, a client library, and a local server.

- `layout`: TF Serving's base-path layout, `<base_path>/<version>/`, shared with the pusher.
- `client`: the gRPC and REST clients and what both return; they work against TF Serving itself.
- `server`: TF Serving's gRPC services and REST API on machines without TF Serving, and its
  configuration files.
- `errors` and `tls`: what both sides share, a status-coded error and certificates.
"""
