"""Publishes SOURCE as the next version of BASE, once per `publish KEEP` line read on stdin.

Usage: python publish_script.py BASE SOURCE. TensorFlow and the pusher's module are imported
once; each publication runs in a forked child (the pusher's own `publish_version` with
`copy_tree`, what the ServingPusher calls), so a test can SIGKILL one publication at a chosen
moment and start the next at once. Answers, one line each: `ready`, then per request
`pid N`, the child's `done VERSION SECONDS` when it finished, and `exit STATUS`.
"""

from __future__ import annotations

import os
import sys
import time

# A process of its own: Keras 2 (tf_keras) is chosen before TensorFlow loads, as imgpipe does.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from components.serving_pusher.publish import copy_tree, publish_version


def main(base: str, source: str) -> None:
    """Serves publish requests from stdin until it closes."""
    print("ready", flush=True)
    for line in sys.stdin:
        keep = int(line.split()[1])
        pid = os.fork()
        if pid == 0:
            started = time.monotonic()
            code = 0
            try:
                published = publish_version(base, lambda d: copy_tree(source, d), keep)
                print(f"done {published.version} {time.monotonic() - started:.4f}", flush=True)
            except BaseException as error:  # noqa: BLE001  (reported to the test)
                print(f"error {type(error).__name__}: {error}", flush=True)
                code = 1
            os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
