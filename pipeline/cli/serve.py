"""`imgpipe serve` and `serving-config`: a local TF Serving stand-in, and TF Serving's files.

`serve` is a local server speaking TF Serving's protocols, for machines without TF Serving;
`serving-config` writes TF Serving's model and batching configuration files. The `serving`
package is imported inside each command, so `--help` and argument errors answer without loading
TensorFlow.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from pipeline.cli.options import check_model_name
from pipeline.errors import UserError

LABEL_ASSIGNMENT = re.compile(r"([A-Za-z0-9_.-]+)=([0-9]+)")


def _labels(values: Sequence[str]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for value in values:
        match = LABEL_ASSIGNMENT.fullmatch(value)
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
    from serving.server.versions import VersionPolicy

    if sum(x is not None and x is not False for x in (latest, versions, all_versions)) > 1:
        raise UserError("--latest, --versions and --all-versions are alternatives; pass one")
    if versions:
        return VersionPolicy("specific", versions=_int_list(versions, "--versions"))
    if all_versions:
        return VersionPolicy("all")
    return VersionPolicy("latest", num_versions=latest or 1)


@click.command("serving-config")
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
    check_model_name(model_name, "--model-name")
    policy = _policy(latest, versions, all_versions)
    label_map = _labels(labels)
    from serving.server.config import BatchingOptions, write_serving_config
    from serving.server.manager import ModelSource

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
    from serving.server.config import read_model_config_file
    from serving.server.manager import ModelSource

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
        name = check_model_name(model_name or "", "--model-name") if model_name \
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


@click.command("serve")
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
@click.option("--shutdown-grace-seconds", "grace_seconds", default=10.0, show_default=True,
              type=click.FloatRange(0.0, 3600.0),
              help="On SIGTERM or Ctrl-C, new requests are refused and those in flight get "
                   "this long to finish before the server exits.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TLS: the server's certificate (PEM).")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TLS: the server's private key (PEM).")
@click.option("--tls-client-ca", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Mutual TLS: accept only clients with a certificate from this CA (PEM).")
def serve(model_name: str | None, model_base_path: Path | None, model_config_file: Path | None,
          host: str, port: int, rest_port: int, no_rest: bool, poll_seconds: float,
          no_model_warmup: bool, max_request_mb: int, threads: int, grace_seconds: float,
          tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None) -> None:
    """Serve models over TF Serving's gRPC and REST APIs, picking up new versions as they land."""
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together; pass both to serve over TLS")
    if tls_client_ca is not None and tls_cert is None:
        raise UserError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
    sources = _serve_sources(model_name, model_base_path, model_config_file)
    from serving.server.manager import ModelRegistry
    from serving.server.server import ModelServer, ServerOptions
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
    _serve_until_stopped(server, registry, sources, grace_seconds)


def _serve_until_stopped(server: Any, registry: Any, sources: list[Any],
                         grace_seconds: float) -> None:
    from serving.server.server import host_port

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
    while not stop.wait(0.2):
        pass
    click.echo(f"stopping: new requests are refused, those in flight get {grace_seconds:g} s")
    unfinished = server.stop(grace_seconds)
    registry.stop()
    click.echo("stopped" + (f" ({unfinished} REST requests cut at the deadline)"
                            if unfinished else ""))
