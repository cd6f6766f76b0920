"""`imgpipe predict` and `status`: TF Serving clients (gRPC, or REST with `--rest`).

`serve` and `serving-config` are in `serve_command.py`. The `serving` package is imported inside
each command, so `--help` and argument errors answer without loading TensorFlow.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from components.image_example_gen.formats import IMAGE_EXTENSIONS, is_image_path
from pipeline.cli.options import check_model_name
from pipeline.errors import UserError
from trainer.contract import SERVING_SIGNATURE

if TYPE_CHECKING:
    from serving.client.results import ModelTarget, Prediction
    from serving.errors import ServingError
    from serving.tls import ClientTls

ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\s/]+):(\d{1,5})")


def _check_address(value: str, flag: str = "--server") -> str:
    match = ADDRESS.fullmatch(value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise UserError(f"{flag} {value!r} must be HOST:PORT, e.g. localhost:8500")
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


def client_options(function: Callable[..., Any], required: bool = True) -> Callable[..., Any]:
    """The flags `predict` and `status` share: server, model, version, protocol, TLS.

    `required=False` leaves --server and --model to the command (predict's --tflite needs none).
    """
    unless = "" if required else " Required unless --tflite."
    options = [
        click.option("--server", required=required, help="TF Serving's address, HOST:PORT "
                     f"(gRPC 8500, REST 8501).{unless}"),
        click.option("--model", "model_name", required=required,
                     help=f"The model's name.{unless}"),
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
    from serving.client.grpc_client import ClientOptions, ServingClient
    from serving.client.rest_client import RestClient

    if rest:
        return RestClient(server, timeout_seconds=timeout, batch_size=batch_size, tls=tls)
    return ServingClient(server, ClientOptions(timeout_seconds=timeout, batch_size=batch_size,
                                               tls=tls))


def _target(model_name: str, version: int | None, label: str | None,
            signature: str = SERVING_SIGNATURE) -> ModelTarget:
    from serving.client.results import ModelTarget

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

    from serving.client.results import batches
    from serving.errors import ServingError

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


def _echo_answers(files: list[Path], answers: list[tuple[str, float]]) -> None:
    width = max(len("file"), *(len(str(f)) for f in files))
    class_width = max(len("class"), *(len(name) for name, _ in answers))
    click.echo(f"{'file':<{width}}  {'class':<{class_width}}  probability")
    for path, (name, probability) in zip(files, answers, strict=True):
        click.echo(f"{str(path):<{width}}  {name:<{class_width}}  {probability:.4f}")


@click.command("predict")
@functools.partial(client_options, required=False)
@click.option("--signature", default=SERVING_SIGNATURE, show_default=True,
              help="The signature to call.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 10_000),
              help="Images per request.")
@click.option("--tflite", "tflite_file", type=click.Path(path_type=Path), default=None,
              help="Classify here with this TFLite model (a .tflite file imgpipe run pushed, "
                   "with its JSON or labels.txt beside it) instead of a server.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def predict(server: str | None, model_name: str | None, version: int | None, label: str | None,
            rest: bool, timeout: float, tls: bool, ca_cert: Path | None,
            client_cert: Path | None, client_key: Path | None, server_name: str | None,
            signature: str, batch_size: int, tflite_file: Path | None,
            paths: tuple[Path, ...]) -> None:
    """Classify image files (or folders of images) with a model served by TF Serving, or with
    a TFLite model (--tflite)."""
    from serving.errors import ServingError

    if tflite_file is not None:
        if server or model_name:
            raise UserError("--tflite classifies here, without a server: drop --server and "
                            "--model, or --tflite")
        from pipeline.cli.lite import predict_files

        files = image_files(list(paths))
        _echo_answers(files, predict_files(tflite_file, files))
        click.echo(f"model {tflite_file} (TFLite, on this machine)")
        return
    if not server or not model_name:
        raise UserError("predict needs --server and --model (a served model), or --tflite FILE "
                        "(a TFLite model on this machine)")
    _check_address(server)
    target = _target(check_model_name(model_name, "--model"), version, label, signature)
    files = image_files(list(paths))
    client_tls = _client_tls(tls, ca_cert, client_cert, client_key, server_name)
    try:
        client = _connect(server, rest, timeout, batch_size, client_tls)
        answers = _predict_all(client, files, target, batch_size)
    except ServingError as error:
        raise _user_error(error, server, timeout) from None
    except (OSError, ValueError) as error:
        raise UserError(str(error)) from None
    _echo_answers(files, [(a.class_name, a.probability) for a in answers])
    versions = sorted({a.model_version for a in answers if a.model_version is not None})
    if versions:
        click.echo(f"model {model_name} version {', '.join(str(v) for v in versions)} "
                   f"at {server}")


@click.command("status")
@client_options
@click.option("--metadata", is_flag=True,
              help="Also print the signatures' inputs and outputs (GetModelMetadata).")
def status(server: str, model_name: str, version: int | None, label: str | None, rest: bool,
           timeout: float, tls: bool, ca_cert: Path | None, client_cert: Path | None,
           client_key: Path | None, server_name: str | None, metadata: bool) -> None:
    """Print the versions of a served model and their states (and its signatures)."""
    from serving.errors import ServingError

    _check_address(server)
    target = _target(check_model_name(model_name, "--model"), version, label)
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
