"""A second `imgpipe run` on an output another run holds: one line, exit 2, nothing touched.

The lock is held from this process with the product's own `output_lock` (what a running
`imgpipe run` holds for its whole run); the refused run is the real console script. The output
already has a run's history (an ML Metadata store, a summary): the refusal must leave every byte
of it, and of the data, as it was.
"""

from __future__ import annotations

import time

from pipeline.local.lock import output_lock


def _mlmd_store(path) -> None:
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    mlmd.MetadataStore(config).put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))


def test_a_second_run_refuses_while_the_output_is_held(tmp_path, imgpipe, write_classes,
                                                       tree_state):
    data = write_classes(tmp_path / "data")
    output = tmp_path / "out"
    output.mkdir()
    _mlmd_store(output / "metadata.sqlite")
    (output / "summary.json").write_text("{}\n")
    with output_lock(output):
        before = tree_state(data), tree_state(output)
        started = time.monotonic()
        result = imgpipe.run("run", "--data", str(data), "--output", str(output),
                             "--weights", "none", "--image-size", "75")
        seconds = time.monotonic() - started
        after = tree_state(data), tree_state(output)
    line = result.assert_one_line_error(f"another imgpipe run is using {output}")
    assert "wait for it to finish, or pass another --output" in line
    assert after == before  # the lock file too: it still names the holder
    print(f"\nrefused in {seconds:.1f} s")
