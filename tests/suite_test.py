"""What the suite promises about itself: no test can hang the run, and none can pass by skipping.

Every test has a time limit (pytest-timeout: pyproject.toml's for the slow tests,
tests/conftest.py's FAST_TEST_TIMEOUT for the others). The programs the suite needs besides
Python are installed by the Makefile, and a test whose program is missing fails
(tests/conftest.py's `required_tool`).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_this_test_has_the_fast_time_limit_and_the_slow_ones_the_configured_one(request):
    assert request.node.get_closest_marker("timeout").args == (600,)
    assert request.config.getini("timeout") == "1800"
    assert request.config.getini("timeout_method") == "signal"


def test_a_hang_fails_its_test_on_an_xdist_worker_and_the_run_goes_on(tmp_path):
    (tmp_path / "hang_test.py").write_text(
        "import time\n\n\ndef test_hangs():\n    time.sleep(60)\n\n\n"
        "def test_after():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
         str(tmp_path), "-p", "no:cacheprovider", "-q", "-n", "1", "--dist", "loadfile",
         "-o", "timeout=2", str(tmp_path / "hang_test.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout (>2.0s) from pytest-timeout" in done.stdout
    assert "1 failed, 1 passed" in done.stdout


def test_the_makefile_installs_every_program_the_tests_need(required_tools):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    tools = re.search(r"^TEST_TOOLS := (.*)\n", makefile, re.M).group(1).split()
    packages = re.search(r"^TEST_PACKAGES := (.*)\n", makefile, re.M).group(1).split()
    assert sorted(tools) == sorted(f"/usr/bin/{name}" for name in required_tools)
    assert sorted(packages) == sorted(set(required_tools.values()))
    assert re.search(r"^test: .*\btest-tools\b", makefile, re.M)


def test_a_missing_program_fails_the_test_and_names_the_make_target(required_tool, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"strace is not installed .*'make test-tools'"):
        required_tool("strace")


def test_no_test_looks_for_a_program_itself_or_skips():
    looking = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path in (ROOT / "tests" / "conftest.py", Path(__file__).resolve()):
            continue
        text = path.read_text(encoding="utf-8")
        if "which(" in text:
            looking.append(f"{path.relative_to(ROOT)}: shutil.which (use required_tool)")
        if "pytest.skip(" in text:
            looking.append(f"{path.relative_to(ROOT)}: pytest.skip")
    assert looking == []
