"""Checks `imgpipe run` makes before anything runs, beyond the layout scan of `dataset.py`.

Each one turns a failure that would otherwise surface deep inside a component (or as a Python
traceback) into one line: data this user cannot read, an ML Metadata database that is not one,
data and output folders inside each other, an output folder that cannot be written, weights the
Trainer could not load, and a Docker engine that does not answer. A refusal answers before TFX
loads, except the weights check.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UserError
from pipeline.local.layout import OutputLayout

if TYPE_CHECKING:
    import tensorflow as tf

    from trainer.hparams import HParams

SQLITE_HEADER = b"SQLite format 3\x00"
# Below this much free space a run cannot even write its log and its metadata store.
MIN_FREE_BYTES = 1 << 20
# Tables ML Metadata creates in every store it initializes (ml-metadata 1.16's SQLite schema).
MLMD_TABLES = frozenset({"Type", "Artifact", "Execution", "Context", "Event", "MLMDEnv"})


def _reason(error: OSError | None) -> str:
    if error is None or not error.strerror:
        return "permission denied"
    return error.strerror.lower()


def unreadable_entries(data: Path) -> list[tuple[Path, str]]:
    """Every folder this process cannot list and every file it cannot read under `data`.

    Symbolic links count by their targets (the ExampleGen follows them); a dangling one is
    unreadable. Sorted by path.
    """
    problems: list[tuple[Path, str]] = []

    def on_error(error: OSError) -> None:
        problems.append((Path(error.filename), _reason(error)))

    for folder, dirs, files in os.walk(data, onerror=on_error):
        for name in dirs:
            path = Path(folder, name)
            if not os.access(path, os.R_OK | os.X_OK):
                problems.append((path, "permission denied" if path.exists()
                                 else "a link to nothing"))
        for name in files:
            path = Path(folder, name)
            if not os.access(path, os.R_OK):
                problems.append((path, "permission denied" if path.exists()
                                 else "a link to nothing"))
    # os.walk reports a folder it cannot list through on_error; os.access found it first.
    unique = {path: reason for path, reason in problems}
    return sorted(unique.items())


def check_data_readable(data: Path) -> None:
    """Refuses a data folder holding anything this user cannot read: no file is skipped unseen.

    A missing folder is left to `scan_dataset`, which says so in its own words.
    """
    if not data.exists() and not data.is_symlink():
        return
    if data.is_dir() and not os.access(data, os.R_OK | os.X_OK):
        raise UserError(f"cannot read the data folder {data} (permission denied); make it "
                        f"readable (chmod -R a+rX {data}) or run as a user who can read it")
    problems = unreadable_entries(data) if data.is_dir() else []
    if problems:
        path, reason = problems[0]
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise UserError(f"cannot read {path} ({reason}){more} under the data folder {data}; "
                        f"make them readable (chmod -R a+rX {data}) or move them out of it")


def undecodable_names(data: Path) -> list[str]:
    """Every path under `data` whose name is not UTF-8, as text (`dogs/bad\\xffname.png`)."""
    names = []
    for folder, dirs, files in os.walk(data):
        for name in [*dirs, *files]:
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:  # os.walk keeps bytes that are not UTF-8 as surrogates
                relative = os.fsencode(os.path.relpath(os.path.join(folder, name), data))
                names.append(relative.decode("utf-8", "backslashreplace"))
    return sorted(names)


def check_data_names(data: Path) -> None:
    """Refuses file names that are not UTF-8: TFX's ExampleGen driver lists the data with
    TensorFlow's glob, which fails on them, so they are named here, all of them counted."""
    names = undecodable_names(data) if data.is_dir() else []
    if names:
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        raise UserError(f"the name of {data / names[0]}{more} is not UTF-8 text, which TFX "
                        "cannot list; rename them, e.g. convmv -r -f latin1 -t utf8 --notest "
                        f"{data}")


def check_metadata_store(output: Path) -> None:
    """Refuses an OUTPUT/metadata.sqlite that ML Metadata could not open or would damage.

    An absent or empty file is fine (ML Metadata creates its tables); otherwise it must be a
    SQLite database that passes SQLite's own quick check and, if it has tables, has ML
    Metadata's.
    """
    path = OutputLayout(output).metadata_path
    if not path.exists() and not path.is_symlink():
        return
    what = f"the ML Metadata database {path}"
    fix = ("move it away to start a new history in this output, or pass another --output")
    if not path.is_file():
        raise UserError(f"{what} is not a file; {fix}")
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise UserError(f"cannot read {what} ({_reason(error)}); fix its permissions or "
                        "pass another --output") from None
    if not header:
        return
    if header != SQLITE_HEADER:
        raise UserError(f"{what} is not a SQLite database (damaged or overwritten); {fix}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            check = connection.execute("PRAGMA quick_check").fetchone()
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise UserError(f"{what} cannot be read by SQLite ({error}); {fix}") from None
    if not check or check[0] != "ok":
        raise UserError(f"{what} is damaged (SQLite's check: {check[0] if check else 'none'}); "
                        f"{fix}")
    if tables and not MLMD_TABLES <= tables:
        raise UserError(f"{what} is a SQLite database but not ML Metadata's (it lacks "
                        f"{', '.join(sorted(MLMD_TABLES - tables))}); {fix}")


def resolve_weights(value: str) -> str:
    """'imagenet', 'none' or an absolute path of an existing .h5 file; anything else is an error."""
    if value in ("imagenet", "none"):
        return value
    path = Path(value)
    if path.suffix.lower() != ".h5":
        raise UserError(f"unknown --weights value {value!r}: use imagenet, none or the path of "
                        "an .h5 weights file")
    if not path.is_file():
        raise UserError(f"weights file {value} does not exist; pass an existing .h5 file, "
                        "or make one with 'imgpipe pretrain-base'")
    return str(path.resolve())


def check_weights(hp: HParams) -> tf.keras.Model | None:
    """Fails early, before any component runs, on weights the Trainer could not load.

    This builds the base once with the weights: for 'imagenet' Keras downloads its no-top weights
    into its cache now (the Trainer then reads them from there); a local file is checked against
    its pinned digest and loaded, so a file that is not HDF5 or does not fit the base stops the
    run here, with one line. Returns that built base (None for 'none'), so input-scaling
    detection reads it rather than building another (about 8 CPU-seconds for InceptionV3).
    """
    from trainer.bases import build_application, check_weights_file

    if hp.weights == "imagenet":
        try:
            return build_application(hp.base_spec, hp.image_size, "imagenet")
        except Exception as error:  # noqa: BLE001  (any failure means: no weights)
            lines = str(error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            raise UserError(f"could not get ImageNet weights for {hp.base} ({reason}); without "
                            "internet pass --weights PATH.h5 (e.g. from 'imgpipe pretrain-base')"
                            ) from None
    elif hp.weights != "none":
        try:
            check_weights_file(hp.weights, hp.weights_sha256)
        except ValueError as error:
            raise UserError(f"{error}; pass the pinned file or correct --weights-sha256") from None
        try:
            return build_application(hp.base_spec, hp.image_size, hp.weights)
        except Exception as error:  # noqa: BLE001  (h5py, Keras and our check raise various)
            lines = str(error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            raise UserError(f"weights file {hp.weights} does not fit the {hp.base} base "
                            f"({reason}); pass a no-top {hp.base} .h5 file") from None
    return None


def check_docker() -> None:
    """A Docker engine must answer before `--infra-validation docker` starts the pipeline."""
    import docker

    try:
        docker.from_env(timeout=10).ping()
    except Exception as error:  # noqa: BLE001  (docker raises several kinds when unreachable)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--infra-validation docker needs a Docker engine, and none answers "
                        f"({reason[:160]}); start Docker or use --infra-validation local"
                        ) from None


def check_paths(data: Path, output: Path) -> None:
    """The data and output folders must not contain each other."""
    data, output = data.resolve(), output.resolve()
    if data == output or data in output.parents or output in data.parents:
        raise UserError(f"--data {data} and --output {output} overlap; put the output folder "
                        "outside the data folder")


def check_output_writable(output: Path) -> None:
    """The output folder (or, before it exists, the folder it would be made in) can be written.

    Asked of the file system, not by writing a probe (which would change a folder that may not
    be ours): a read-only mount (`statvfs`'s ST_RDONLY, which holds for root too), no free
    space for this user, or, for a user other than root, no write permission.
    """
    folder = output.resolve()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"--output {output}: {folder} is a file, not a folder; pass a folder")
    status = os.statvfs(folder)
    if status.f_flag & os.ST_RDONLY:
        reason = "read-only file system"
    elif status.f_bavail * status.f_frsize < MIN_FREE_BYTES:
        reason = "no space left on device"
    elif not os.access(folder, os.W_OK | os.X_OK):
        reason = "permission denied"
    else:
        return
    what = "" if folder == output.resolve() else f" ({folder}, where it would be made)"
    raise UserError(f"--output {output} cannot be written{what}: {reason}; pass a folder on a "
                    "writable disk with free space")
