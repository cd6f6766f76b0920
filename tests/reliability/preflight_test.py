"""`pipeline.local.preflight` on its own: what it lets through matters as much as what it
refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.local.preflight import check_data_readable, check_metadata_store, unreadable_entries


def _store(path) -> None:
    import ml_metadata as mlmd
    from tfx import v1 as tfx

    store = mlmd.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(str(path)))
    store.put_artifact_type(mlmd.proto.ArtifactType(name="Examples"))


def test_absent_empty_and_real_stores_pass(tmp_path):
    check_metadata_store(tmp_path)  # no store yet: ML Metadata creates it
    (tmp_path / "metadata.sqlite").write_bytes(b"")
    check_metadata_store(tmp_path)  # SQLite and ML Metadata take an empty file as a new store
    (tmp_path / "metadata.sqlite").unlink()
    _store(tmp_path / "metadata.sqlite")
    check_metadata_store(tmp_path)


def test_a_store_with_tables_missing_is_refused(tmp_path):
    import sqlite3

    _store(tmp_path / "metadata.sqlite")
    with sqlite3.connect(tmp_path / "metadata.sqlite") as connection:
        connection.execute("DROP TABLE Event")
    with pytest.raises(UserError, match="lacks Event"):
        check_metadata_store(tmp_path)


def test_readable_data_passes_and_unreadable_entries_are_all_listed(tmp_path, monkeypatch,
                                                                    write_classes):
    data = write_classes(tmp_path / "data")
    check_data_readable(data)
    check_data_readable(tmp_path / "missing")  # left to scan_dataset's own message
    denied = {data / "cats", sorted((data / "dogs").iterdir())[1]}
    real_access = os.access
    # This process may be root, for whom chmod changes nothing: deny through os.access, the
    # call the check makes (unreadable_test.py checks the real thing, with real file modes).
    monkeypatch.setattr(os, "access",
                        lambda p, mode: Path(p) not in denied and real_access(p, mode))
    assert [path for path, _ in unreadable_entries(data)] == sorted(denied)
    with pytest.raises(UserError, match=r"cannot read .*cats \(permission denied\) and 1 more"):
        check_data_readable(data)

