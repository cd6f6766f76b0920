"""The programs the suite needs besides Python: the Makefile installs each, and a test whose
program is missing fails (tests/conftest.py's `required_tool`), so CI cannot pass by skipping."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
