"""Checks `imgpipe run` makes before anything runs, beyond the layout scan of `pipeline.dataset`.

Each one turns a failure that would otherwise surface deep inside a component (or as a Python
traceback) into one line: data files or folders this user cannot read, and an ML Metadata
database that is not one. They import nothing heavy, so a refusal answers in a second.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pipeline.errors import UserError

METADATA_FILE = "metadata.sqlite"
SQLITE_HEADER = b"SQLite format 3\x00"
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


def check_metadata_store(output: Path) -> None:
    """Refuses an OUTPUT/metadata.sqlite that ML Metadata could not open or would damage.

    An absent or empty file is fine (ML Metadata creates its tables); otherwise it must be a
    SQLite database that passes SQLite's own quick check and, if it has tables, has ML
    Metadata's.
    """
    path = output / METADATA_FILE
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
