"""`imgpipe predict`, `status`, `serve` and `serving-config`: using the pushed model.

`predict` and `status` are TF Serving clients (gRPC, or REST with `--rest`); `serve` is a local
server speaking TF Serving's protocols, for machines without TF Serving; `serving-config` writes
TF Serving's model and batching configuration files. The `serving` package is imported inside
each command, so `--help` and argument errors answer without loading TensorFlow.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from components.image_example_gen.formats import IMAGE_EXTENSIONS, is_image_path
from pipeline.cli import MODEL_NAME, cli
from pipeline.errors import UserError

if TYPE_CHECKING:
    from serving.errors import ServingError
    from serving.results import ModelTarget, Prediction
    from serving.tls import ClientTls

ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\s/]+):(\d{1,5})$")
LABEL_ASSIGNMENT = re.compile(r"^([A-Za-z0-9_.-]+)=([0-9]+)$")


def _check_address(value: str, flag: str = "--server") -> str:
    match = ADDRESS.match(value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise UserError(f"{flag} {value!r} must be HOST:PORT, e.g. localhost:8500")
    return value


def _check_model_name(value: str, flag: str) -> str:
    if not MODEL_NAME.match(value):
        raise UserError(f"{flag} {value!r} must be letters, digits, '_', '.' or '-'")
    return value


def _client_tls(tls: bool, ca_cert: Path | None, client_cert: Path | None,
                client_key: Path | None, server_name: str | None) -> ClientTls | None:
    if not (tls or ca_cert or client_cert or client_key or server_name):
        return None
    if (client_cert is None) != (client_key is None):
        raise UserError("--client-cert and --client-key go together; pass both for mutual TLS")
    from serving.tls import ClientTls

    return ClientTls(ca_file=str(ca_cert) if ca_cert else None,
                     cert_file=str(client_cert) if client_cert else None,
                     key_file=str(client_key) if client_key else None, server_name=server_name)


def client_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The flags `predict` and `status` share: server, model, version, protocol, TLS."""
    options = [
        click.option("--server", required=True, help="TF Serving's address, HOST:PORT "
                     "(gRPC 8500, REST 8501)."),
        click.option("--model", "model_name", required=True, help="The model's name."),
        click.option("--version", type=click.IntRange(0), default=None,
                     help="A version number (default: the latest served)."),
        click.option("--label", default=None, help="A version label, e.g. stable or canary."),
        click.option("--rest", is_flag=True, help="Use TF Serving's REST API instead of gRPC."),
        click.option("--timeout", default=30.0, show_default=True,
                     type=click.FloatRange(0.0, min_open=True), help="Deadline of each call, s."),
        click.option("--tls", is_flag=True,
                     help="Use TLS, trusting the system's CAs (implied by the TLS flags below)."),
        click.option("--ca-cert", type=click.Path(path_type=Path, dir_okay=False),
                     help="TLS: the CA certificate (PEM) the server's certificate chains to."),
        click.option("--client-cert", type=click.Path(path_type=Path, dir_okay=False),
                     help="Mutual TLS: this client's certificate (PEM)."),
        click.option("--client-key", type=click.Path(path_type=Path, dir_okay=False),
                     help="Mutual TLS: this client's private key (PEM)."),
        click.option("--server-name", default=None,
                     help="TLS (gRPC): the name the server's certificate must carry, if not "
                          "the host dialled."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _connect(server: str, rest: bool, timeout: float, batch_size: int,
             tls: ClientTls | None) -> Any:
    from serving.client import ClientOptions, ServingClient
    from serving.rest_client import RestClient

    if rest:
        return RestClient(server, timeout_seconds=timeout, batch_size=batch_size, tls=tls)
    return ServingClient(server, ClientOptions(timeout_seconds=timeout, batch_size=batch_size,
                                               tls=tls))


def _target(model_name: str, version: int | None, label: str | None,
            signature: str = "serving_default") -> ModelTarget:
    from serving.results import ModelTarget

    if version is not None and label is not None:
        raise UserError("--version and --label both choose a version; pass one of them")
    return ModelTarget(model_name, version=version, version_label=label, signature_name=signature)


def _user_error(error: ServingError, server: str, timeout: float) -> UserError:
    """A server's refusal as one line: what happened, where, and what to try."""
    import grpc

    code, message = error.code, error.message.strip().splitlines()
    first = message[0] if message else ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return UserError(f"no answer from {server} ({first}); start the server "
                         "('imgpipe serve' or TF Serving) or check --server")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UserError(f"{server} did not answer within {timeout:g} s; raise --timeout or "
                         "check the server's load")
    return UserError(f"{server} answered {code.name}: {first}")


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the image files under the folders named (sorted, recursively)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(str(p)))
            if not found:
                raise UserError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist; pass image files or folders of images")
    return files


def _predict_all(client: Any, files: list[Path], target: ModelTarget,
                 batch_size: int) -> list[Prediction]:
    """Predictions for every file; a refused batch is retried file by file to name the culprit."""
    import grpc

    from serving.errors import ServingError
    from serving.results import batches

    answers: list[Prediction] = []
    for batch in batches(files, batch_size):
        try:
            answers.extend(client.predict_files(batch, target))
        except ServingError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT or len(batch) == 1:
                raise
            for path in batch:
                try:
                    answers.extend(client.predict_files([path], target))
                except ServingError as single:
                    if single.code == grpc.StatusCode.INVALID_ARGUMENT:
                        raise UserError(f"{path}: the server refused it: "
                                        f"{single.message}") from None
                    raise
    return answers


@cli.command("predict")
@client_options
@click.option("--signature", default="serving_default", show_default=True,
              help="The signature to call.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 10_000),
              help="Images per request.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def predict(server: str, model_name: str, version: int | None, label: str | None, rest: bool,
            timeout: float, tls: bool, ca_cert: Path | None, client_cert: Path | None,
            client_key: Path | None, server_name: str | None, signature: str, batch_size: int,
            paths: tuple[Path, ...]) -> None:
    """Classify image files (or folders of images) with a model served by TF Serving."""
    from serving.errors import ServingError

    _check_address(server)
    target = _target(_check_model_name(model_name, "--model"), version, label, signature)
    files = image_files(list(paths))
    client_tls = _client_tls(tls, ca_cert, client_cert, client_key, server_name)
    try:
        client = _connect(server, rest, timeout, batch_size, client_tls)
        answers = _predict_all(client, files, target, batch_size)
    except ServingError as error:
        raise _user_error(error, server, timeout) from None
    except (OSError, ValueError) as error:
        raise UserError(str(error)) from None
    width = max(len("file"), *(len(str(f)) for f in files))
    class_width = max(len("class"), *(len(a.class_name) for a in answers))
    click.echo(f"{'file':<{width}}  {'class':<{class_width}}  probability")
    for path, answer in zip(files, answers, strict=True):
        click.echo(f"{str(path):<{width}}  {answer.class_name:<{class_width}}  "
                   f"{answer.probability:.4f}")
    versions = sorted({a.model_version for a in answers if a.model_version is not None})
    if versions:
        click.echo(f"model {model_name} version {', '.join(str(v) for v in versions)} "
                   f"at {server}")


@cli.command("status")
@client_options
@click.option("--metadata", is_flag=True,
              help="Also print the signatures' inputs and outputs (GetModelMetadata).")
def status(server: str, model_name: str, version: int | None, label: str | None, rest: bool,
           timeout: float, tls: bool, ca_cert: Path | None, client_cert: Path | None,
           client_key: Path | None, server_name: str | None, metadata: bool) -> None:
    """Print the versions of a served model and their states (and its signatures)."""
    from serving.errors import ServingError

    _check_address(server)
    target = _target(_check_model_name(model_name, "--model"), version, label)
    client_tls = _client_tls(tls, ca_cert, client_cert, client_key, server_name)
    try:
        client = _connect(server, rest, timeout, 32, client_tls)
        states = client.model_status(model_name, version, label)
        details = client.model_metadata(target) if metadata else None
    except ServingError as error:
        raise _user_error(error, server, timeout) from None
    except (OSError, ValueError) as error:
        raise UserError(str(error)) from None
    click.echo(f"model {model_name} at {server}")
    click.echo(f"{'version':<7}  {'state':<10}  status")
    for state in sorted(states, key=lambda s: s.version, reverse=True):
        health = state.error_code if not state.error_message \
            else f"{state.error_code}: {state.error_message}"
        click.echo(f"{state.version:<7}  {state.state:<10}  {health}")
    if details is not None:
        click.echo(f"signatures of version {details.version}:")
        for name, signature in details.signatures.items():
            if name.startswith("__"):
                continue  # TensorFlow's own, such as __saved_model_init_op
            inputs = ", ".join(f"{t.name} {t.dtype} {_shape(t.shape)}" for t in signature.inputs)
            outputs = ", ".join(f"{t.name} {t.dtype} {_shape(t.shape)}"
                                for t in signature.outputs)
            click.echo(f"  {name}: {inputs} -> {outputs}")


def _shape(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def _labels(values: Sequence[str]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for value in values:
        match = LABEL_ASSIGNMENT.match(value)
        if not match:
            raise UserError(f"--label {value!r} must be NAME=VERSION, e.g. stable=3")
        labels[match.group(1)] = int(match.group(2))
    return labels


def _int_list(value: str | None, flag: str) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise UserError(f"{flag} {value!r} must be comma-separated integers, e.g. 3,4") from None


def _policy(latest: int | None, versions: str | None, all_versions: bool) -> Any:
    from serving.versions import VersionPolicy

    if sum(x is not None and x is not False for x in (latest, versions, all_versions)) > 1:
        raise UserError("--latest, --versions and --all-versions are alternatives; pass one")
    if versions:
        return VersionPolicy("specific", versions=_int_list(versions, "--versions"))
    if all_versions:
        return VersionPolicy("all")
    return VersionPolicy("latest", num_versions=latest or 1)


@cli.command("serving-config")
@click.option("--model-name", required=True, help="TF Serving's model name.")
@click.option("--model-base-path", required=True,
              help="The versions' folder as TF Serving sees it, e.g. /models/NAME in Docker.")
@click.option("--output", "output_dir", required=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Folder for models.config and batching_parameters.txt.")
@click.option("--latest", type=click.IntRange(1, 1000), default=None,
              help="Serve the latest N versions [default: 1].")
@click.option("--versions", default=None, help="Serve these versions only, e.g. 3,4.")
@click.option("--all-versions", is_flag=True, help="Serve every version found.")
@click.option("--label", "labels", multiple=True,
              help="A version label, NAME=VERSION (repeatable), e.g. stable=3 canary=4.")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(1, 1 << 20))
@click.option("--batch-timeout-micros", default=1000, show_default=True,
              type=click.IntRange(0, 60_000_000),
              help="How long a batch waits to fill up.")
@click.option("--max-enqueued-batches", default=100, show_default=True,
              type=click.IntRange(1, 1 << 30))
@click.option("--num-batch-threads", default=4, show_default=True, type=click.IntRange(1, 1024),
              help="Threads running batches; about the serving machine's cores.")
@click.option("--allowed-batch-sizes", default=None,
              help="Batch sizes to pad to, increasing, ending with --max-batch-size, e.g. 8,16,32.")
def serving_config(model_name: str, model_base_path: str, output_dir: Path, latest: int | None,
                   versions: str | None, all_versions: bool, labels: tuple[str, ...],
                   max_batch_size: int, batch_timeout_micros: int, max_enqueued_batches: int,
                   num_batch_threads: int, allowed_batch_sizes: str | None) -> None:
    """Write TF Serving's models.config and batching parameters file, checked by parsing them."""
    _check_model_name(model_name, "--model-name")
    policy = _policy(latest, versions, all_versions)
    label_map = _labels(labels)
    from serving.config import BatchingOptions, write_serving_config
    from serving.manager import ModelSource

    try:
        batching = BatchingOptions(max_batch_size, batch_timeout_micros, max_enqueued_batches,
                                   num_batch_threads,
                                   _int_list(allowed_batch_sizes, "--allowed-batch-sizes"))
        files = write_serving_config(output_dir, ModelSource(model_name, model_base_path, policy,
                                                             label_map), batching)
    except ValueError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"cannot write to {output_dir}: {error.strerror}") from None
    click.echo(f"wrote {files.models_config} (model {model_name}, {policy.describe()}"
               + "".join(f", {k}={v}" for k, v in sorted(label_map.items())) + ")")
    click.echo(f"wrote {files.batching_config} (max batch {max_batch_size}, "
               f"timeout {batch_timeout_micros} us, {num_batch_threads} threads)")
    click.echo("use: tensorflow_model_server --model_config_file=" + str(files.models_config)
               + " --enable_batching --batching_parameters_file=" + str(files.batching_config))


def _serve_sources(model_name: str | None, model_base_path: Path | None,
                   model_config_file: Path | None) -> list[Any]:
    from serving.config import read_model_config_file
    from serving.manager import ModelSource

    if model_config_file is not None:
        if model_name or model_base_path:
            raise UserError("--model-config-file replaces --model-name and --model-base-path; "
                            "pass one or the other")
        try:
            sources = read_model_config_file(model_config_file)
        except ValueError as error:
            raise UserError(f"{error}; fix the file (TF Serving's ModelServerConfig text "
                            "format)") from None
    elif model_base_path is None:
        raise UserError("pass --model-base-path (with --model-name) or --model-config-file")
    else:
        name = _check_model_name(model_name or "", "--model-name") if model_name \
            else "default"  # TF Serving's --model_name default
        sources = [ModelSource(name, str(model_base_path))]
    for source in sources:
        if not Path(source.base_path).is_dir():
            raise UserError(f"model base path {source.base_path} of model {source.name} does "
                            "not exist; pass the folder holding the numbered versions, e.g. "
                            f"OUTPUT/serving/{source.name}")
    return sources


def _check_loaded(registry: Any) -> None:
    """Like TF Serving, refuse to start when a model's versions fail to load."""
    for name, manager in registry.managers.items():
        for version, state in sorted(manager.states().items()):
            if state.error_message:
                raise UserError(f"version {version} of model {name} in "
                                f"{manager.source.base_path} failed to load "
                                f"({state.error_message}); fix or remove it")


@cli.command("serve")
@click.option("--model-name", default=None, help="The model's name [default: 'default'].")
@click.option("--model-base-path", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="The folder of numbered versions, e.g. OUTPUT/serving/NAME.")
@click.option("--model-config-file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="TF Serving's ModelServerConfig text file (models, version "
              "policies, labels), instead of the two flags above.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface.")
@click.option("--port", default=8500, show_default=True, type=click.IntRange(0, 65535),
              help="gRPC port (0: any free port, printed).")
@click.option("--rest-port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="REST port (0: any free port, printed).")
@click.option("--no-rest", is_flag=True, help="Serve gRPC only.")
@click.option("--file-system-poll-wait-seconds", "poll_seconds", default=1.0, show_default=True,
              type=click.FloatRange(0.0), help="How often to look for new versions; 0: never.")
@click.option("--no-model-warmup", is_flag=True,
              help="Do not replay assets.extra/tf_serving_warmup_requests before serving.")
@click.option("--max-request-mb", default=64, show_default=True, type=click.IntRange(1, 2047),
              help="Larger requests fail with RESOURCE_EXHAUSTED.")
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 1024),
              help="Requests handled at once.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TLS: the server's certificate (PEM).")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TLS: the server's private key (PEM).")
@click.option("--tls-client-ca", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Mutual TLS: accept only clients with a certificate from this CA (PEM).")
def serve(model_name: str | None, model_base_path: Path | None, model_config_file: Path | None,
          host: str, port: int, rest_port: int, no_rest: bool, poll_seconds: float,
          no_model_warmup: bool, max_request_mb: int, threads: int, tls_cert: Path | None,
          tls_key: Path | None, tls_client_ca: Path | None) -> None:
    """Serve models over TF Serving's gRPC and REST APIs, picking up new versions as they land."""
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together; pass both to serve over TLS")
    if tls_client_ca is not None and tls_cert is None:
        raise UserError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
    sources = _serve_sources(model_name, model_base_path, model_config_file)
    from serving.manager import ModelRegistry
    from serving.server import ModelServer, ServerOptions
    from serving.tls import ServerTls, read_pem

    tls = None
    if tls_cert is not None and tls_key is not None:
        tls = ServerTls(str(tls_cert), str(tls_key), str(tls_client_ca) if tls_client_ca else None)
        try:
            for path, what in ((tls.cert_file, "server certificate"), (tls.key_file, "server key"),
                               (tls.client_ca_file, "client CA certificate")):
                if path:
                    read_pem(path, what)
        except ValueError as error:
            raise UserError(str(error)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if tls is None and host not in ("127.0.0.1", "localhost", "::1"):
        logging.warning("serving in plaintext on %s: anyone who reaches it can call the model "
                        "and read its answers; pass --tls-cert and --tls-key", host)
    registry = ModelRegistry(sources, poll_seconds=poll_seconds, warmup=not no_model_warmup)
    registry.load()
    _check_loaded(registry)
    options = ServerOptions(host=host, grpc_port=port, rest_port=None if no_rest else rest_port,
                            tls=tls, max_request_bytes=max_request_mb * 1024 * 1024,
                            threads=threads)
    server = ModelServer(registry, options)
    try:
        server.start()
    except OSError as error:
        raise UserError(f"{error}; pass another --port/--rest-port or stop what uses it") \
            from None
    _serve_until_stopped(server, registry, sources)


def _serve_until_stopped(server: Any, registry: Any, sources: list[Any]) -> None:
    from serving.server import host_port

    for source in sources:
        versions = registry.managers[source.name].served_versions
        served = ", ".join(str(v) for v in versions) if versions else "none yet (waiting)"
        labels = "".join(f", {k}={v}" for k, v in sorted(source.labels.items()))
        click.echo(f"model {source.name}: versions {served} from {source.base_path} "
                   f"({source.policy.describe()}{labels})")
    scheme = "TLS" if server.options.tls else "plaintext"
    rest = (f" and {host_port(server.options.host, server.rest_port)} (REST)"
            if server.rest_port else "")
    click.echo(f"listening on {host_port(server.options.host, server.grpc_port)} (gRPC){rest}, "
               f"{scheme}; Ctrl-C stops")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    registry.start_polling()
    while not stop.wait(1.0):
        pass
    click.echo("stopping")
    server.stop()
    registry.stop()
