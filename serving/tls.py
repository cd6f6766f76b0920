"""TLS for both ends, from PEM files: a server certificate, and client certificates for mutual TLS.

TF Serving takes the same three things in its `--ssl_config_file` (SSLConfig: server_key,
server_cert, custom_ca, client_verify); here they are file paths.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import grpc


def read_pem(path: str, what: str) -> bytes:
    """The bytes of a PEM file; ValueError naming `what` when it cannot be read or is not PEM."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the {what} {path}: {error.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"the {what} {path} is not a PEM file")
    return data


@dataclasses.dataclass(frozen=True)
class ClientTls:
    """What a client trusts and shows: the server's CA, and its own certificate for mutual TLS.

    `ca_file` None trusts the system's roots. `server_name` (gRPC only) checks the server's
    certificate for that name instead of the host dialled.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both its certificate and its key file")

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials for grpc.secure_channel."""
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca_file, "CA certificate") if self.ca_file else None,
            private_key=read_pem(self.key_file, "client key") if self.key_file else None,
            certificate_chain=read_pem(self.cert_file, "client certificate")
            if self.cert_file else None)

    def ssl_context(self) -> ssl.SSLContext:
        """The same trust and identity for HTTPS (the REST client)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclasses.dataclass(frozen=True)
class ServerTls:
    """The server's certificate and key; with `client_ca_file`, clients must show a certificate
    that CA signed (mutual TLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials for add_secure_port."""
        client_ca = (read_pem(self.client_ca_file, "client CA certificate")
                     if self.client_ca_file else None)
        key_and_cert = (read_pem(self.key_file, "server key"),
                        read_pem(self.cert_file, "server certificate"))
        return grpc.ssl_server_credentials([key_and_cert], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        """The same certificate and client check for the REST endpoint."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context
