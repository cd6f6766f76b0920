"""Publishes SOURCE as the next version of BASE, keeping KEEP versions, in a fresh process.

Usage: python publish_script.py BASE SOURCE KEEP. It imports TensorFlow and the pusher's module,
answers `ready`, then runs the pusher's own `publish_version` with `copy_tree` (what the
ServingPusher calls) and answers `done VERSION SECONDS` (or `error ...`). A test can SIGKILL it
at a chosen moment after `ready`. A process per publication, not a fork of one that has loaded
TensorFlow: forking a process with TensorFlow's and gRPC's threads can deadlock, and once did.
"""

from __future__ import annotations

import os
import sys
import time

# A process of its own: Keras 2 (tf_keras) is chosen before TensorFlow loads, as imgpipe does.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from components.serving_pusher.publish import copy_tree, publish_version


def main(base: str, source: str, keep: int) -> int:
    """One publication; 0 when it completed."""
    print("ready", flush=True)
    started = time.monotonic()
    try:
        published = publish_version(base, lambda d: copy_tree(source, d), keep)
    except BaseException as error:  # noqa: BLE001  (reported to the test)
        print(f"error {type(error).__name__}: {error}", flush=True)
        return 1
    print(f"done {published.version} {time.monotonic() - started:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
