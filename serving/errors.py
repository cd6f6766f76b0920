"""One error type for both sides of the wire: a gRPC status code and TF Serving's message."""

from __future__ import annotations

import grpc

# TensorFlow's error codes (tensorflow.error.Code) are gRPC's status codes, number for number.
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request that failed with a gRPC status code, as TF Serving reports it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def status_code(number: int) -> grpc.StatusCode:
    """The gRPC status code with this number (TensorFlow's error codes share the numbering)."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def short_message(message: str) -> str:
    """TensorFlow's error text without the graph trace it appends: its first meaningful line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    # Eager calls of graph functions prefix "Graph execution error:" and a Python stack, and end
    # with the kernel's own message followed by "[[{{node ...}}]]"; the latter is what users need.
    for line in reversed(lines):
        text = line.split("[[{{node")[0].split("[Op:")[0].strip()
        if text and not text.startswith(("File ", "Detected at node")):
            return text
    return lines[0] if lines else "unknown error"
