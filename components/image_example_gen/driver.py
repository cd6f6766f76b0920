"""The image ExampleGen's driver: TFX's FileBasedDriver with a fingerprint that sees names.

TFX fingerprints an ExampleGen's input by the number, sizes and modification times of the files
its patterns match, not by their names. Moving an image from `cat/` to `dog/` (fixing a label)
keeps all three, so a cached run would reuse examples with the old label. This driver adds a
digest of every file's path below the split folders (hidden and nested ones too, which the
executor quarantines), with its size and modification time, so any rename, move, addition or
removal re-runs ingestion. With a span window (`ImageLayout.window`), the digest covers every
span folder of the window, so a change in an older span of it re-runs ingestion too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from tfx.components.example_gen import driver, input_processor
from tfx.proto import example_gen_pb2, range_config_pb2

from components.image_example_gen import files
from components.image_example_gen.settings import window_from_exec_properties


def listing_digest(input_base: str, roots: Iterable[str]) -> str:
    """SHA-256 over (relative path, size, mtime) of every file under the roots, in path order."""
    import tensorflow as tf

    digest = hashlib.sha256()
    for root in sorted(set(roots)):
        for found in files.find_files(input_base, root):
            stat = tf.io.gfile.stat(found.path)
            digest.update(f"{found.relative}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
    return digest.hexdigest()


class ImageInputProcessor(input_processor.FileBasedInputProcessor):
    """FileBasedInputProcessor whose fingerprint also covers the file names."""

    def __init__(self, input_base_uri: str, splits: Iterable[example_gen_pb2.Input.Split],
                 range_config: range_config_pb2.RangeConfig | None = None, window: int = 1):
        self._patterns = [split.pattern for split in splits]
        self._window = window
        super().__init__(input_base_uri, splits, range_config)

    def get_input_fingerprint(self, span: int, version: int | None) -> str | None:
        """TFX's fingerprint plus the digest of the file listing of the window's span folders."""
        fingerprint = super().get_input_fingerprint(span, version)
        roots = [files.split_root(self.get_pattern_for_span_version(p, span, version))
                 for p in self._patterns]
        in_window = [root for _, root in files.window_roots(
            self._input_base_uri, roots, span, self._window)]
        return f"{fingerprint},listing_sha256:{listing_digest(self._input_base_uri, in_window)}"


class ImageExampleGenDriver(driver.FileBasedDriver):
    """FileBasedDriver with `ImageInputProcessor`, told the span window from `custom_config`."""

    _window = 1

    def resolve_exec_properties(self, exec_properties: dict[str, Any], pipeline_info: Any,
                                component_info: Any) -> dict[str, Any]:
        """TFX's resolution (span, version, patterns, fingerprint) with the window known."""
        self._window = window_from_exec_properties(exec_properties)
        return super().resolve_exec_properties(exec_properties, pipeline_info, component_info)

    def get_input_processor(self, splits: Iterable[example_gen_pb2.Input.Split],
                            range_config: range_config_pb2.RangeConfig | None = None,
                            input_base_uri: str | None = None
                            ) -> input_processor.InputProcessor:
        """The input processor whose fingerprint sees renames and moves."""
        if not input_base_uri:
            raise ValueError("the image ExampleGen needs input_base")
        return ImageInputProcessor(input_base_uri, splits, range_config, self._window)
