"""TLS and mutual TLS, with a CA, server and client certificates this test makes."""

import datetime
import ipaddress

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.cli import cli
from serving.client.grpc_client import ClientOptions, RetryPolicy, ServingClient
from serving.client.rest_client import RestClient
from serving.client.results import ModelTarget
from serving.errors import ServingError
from serving.server.server import ModelServer, ServerOptions
from serving.tls import ClientTls, ServerTls

MODEL = "clf"
NO_WAIT = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.05, max_backoff_seconds=0.05)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, key, issuer, issuer_key, *, ca=False, sans=(), usage=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path, certificate=None, key=None):
    if certificate is not None:
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem, server.pem/-key.pem (127.0.0.1, localhost), client.pem/-key.pem, other-ca.pem."""
    root = tmp_path_factory.mktemp("pki")
    keys = {name: ec.generate_private_key(ec.SECP256R1())
            for name in ("ca", "server", "client", "other")}
    ca = _certificate("test CA", keys["ca"], "test CA", keys["ca"], ca=True)
    server = _certificate("localhost", keys["server"], "test CA", keys["ca"],
                          sans=(x509.DNSName("localhost"),
                                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
                          usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate("a client", keys["client"], "test CA", keys["ca"],
                          usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _certificate("other CA", keys["other"], "other CA", keys["other"], ca=True)
    return {
        "ca": _write(root / "ca.pem", ca),
        "server": _write(root / "server.pem", server),
        "server_key": _write(root / "server-key.pem", key=keys["server"]),
        "client": _write(root / "client.pem", client),
        "client_key": _write(root / "client-key.pem", key=keys["client"]),
        "other_ca": _write(root / "other-ca.pem", other),
    }


@pytest.fixture(scope="module")
def tls_server(registry, pki):
    server = ModelServer(registry, ServerOptions(
        grpc_port=0, rest_port=None, tls=ServerTls(pki["server"], pki["server_key"])))
    server.start()
    yield f"127.0.0.1:{server.grpc_port}"
    server.stop(grace_seconds=0)


@pytest.fixture(scope="module")
def mutual_server(registry, pki):
    server = ModelServer(registry, ServerOptions(
        grpc_port=0, rest_port=0,
        tls=ServerTls(pki["server"], pki["server_key"], client_ca_file=pki["ca"])))
    server.start()
    yield server
    server.stop(grace_seconds=0)


def _predict(address, tls, images):
    with ServingClient(address, ClientOptions(tls=tls, retry=NO_WAIT, timeout_seconds=20)) as c:
        return c.predict([images["circle.png"]], ModelTarget(MODEL))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_with_the_servers_ca(tls_server, pki, images, expected, host):
    address = tls_server.replace("127.0.0.1", host)
    (answer,) = _predict(address, ClientTls(ca_file=pki["ca"]), images)
    assert answer.class_name == expected(2, ["circle.png"])[0][0]


@pytest.mark.parametrize("tls", [None, "other CA"])
def test_a_client_that_does_not_trust_the_server_gets_no_answer(tls_server, pki, images, tls):
    client_tls = ClientTls(ca_file=pki["other_ca"]) if tls else None  # None: plaintext
    with pytest.raises(ServingError) as raised:
        _predict(tls_server, client_tls, images)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_accepts_a_client_with_a_certificate_from_its_ca(mutual_server, pki, images,
                                                                    expected):
    tls = ClientTls(ca_file=pki["ca"], cert_file=pki["client"], key_file=pki["client_key"])
    (answer,) = _predict(f"127.0.0.1:{mutual_server.grpc_port}", tls, images)
    assert answer.class_name == expected(2, ["circle.png"])[0][0]
    rest = RestClient(f"localhost:{mutual_server.rest_port}", tls=tls)
    assert rest.predict([images["circle.png"]], ModelTarget(MODEL))[0] \
        .class_name == answer.class_name


def test_mutual_tls_refuses_a_client_without_a_certificate(mutual_server, pki, images):
    tls = ClientTls(ca_file=pki["ca"])
    with pytest.raises(ServingError) as raised:
        _predict(f"127.0.0.1:{mutual_server.grpc_port}", tls, images)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ServingError) as rest_raised:
        RestClient(f"localhost:{mutual_server.rest_port}", tls=tls).model_status(MODEL)
    assert rest_raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_unreadable_or_non_pem_files_are_named(tmp_path):
    (tmp_path / "not.pem").write_text("hello")
    with pytest.raises(ValueError, match="CA certificate .*not.pem is not a PEM file"):
        ClientTls(ca_file=str(tmp_path / "not.pem")).grpc_credentials()
    with pytest.raises(ValueError, match="cannot read the server key"):
        ServerTls(str(tmp_path / "not.pem"), str(tmp_path / "missing.pem")).grpc_credentials()


def test_the_cli_speaks_mutual_tls(mutual_server, pki):
    result = CliRunner().invoke(cli, [
        "status", "--server", f"localhost:{mutual_server.grpc_port}", "--model", MODEL,
        "--ca-cert", pki["ca"], "--client-cert", pki["client"], "--client-key", pki["client_key"]])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2].split() == ["2", "AVAILABLE", "OK"]
