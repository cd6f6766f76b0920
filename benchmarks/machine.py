"""The machine a benchmark ran on, recorded with its results."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def describe(**versions: str) -> dict[str, Any]:
    """CPU model, cores (all and usable), RAM, OS, Python, and the library versions given."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        ram_gb = round(total_kb / 2**20, 1)
    return {"cpu_model": model, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "ram_gb": ram_gb,
            "os": platform.platform(), "python": platform.python_version(), **versions}


def write_results(output: Path, name: str, result: dict[str, Any], markdown: str) -> None:
    """Writes OUTPUT/<name>.json and OUTPUT/<name>.md and prints the Markdown."""
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / f"{name}.md").write_text(markdown)
    print(markdown)
    sys.stdout.flush()
