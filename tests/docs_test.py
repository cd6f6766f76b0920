"""The README stays a guide, and the flag reference says what `--help` says."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_flag_reference_is_what_help_prints():
    from pipeline.cli.reference import render_reference

    committed = (ROOT / "docs" / "flags.md").read_text(encoding="utf-8")
    assert committed == render_reference(), "docs/flags.md is out of date: run 'make docs'"


def test_the_flag_reference_lists_every_command():
    from pipeline.cli import COMMANDS

    page = (ROOT / "docs" / "flags.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"## imgpipe {name}\n" in page, name


def test_the_readme_is_a_guide_of_at_most_200_lines_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                 ROOT / "benchmarks" / "README.md"]:
        prose = re.sub(r"```.*?```", "", page.read_text("utf-8"), flags=re.S)  # not code
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def _figure(path: str, pattern: str) -> int:
    match = re.search(pattern, (ROOT / path).read_text("utf-8"), flags=re.M | re.S)
    assert match, (path, pattern)
    return int(match.group(1))


def test_the_readmes_reliability_figures_are_the_tests():
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Reliability, in figures", 1)[1].split("\n## ", 1)[0]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         str(ROOT / "tests" / "reliability" / "bad_input_test.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT).stdout.splitlines()
    # Every collected case is a refusal but the two that check coverage and a pass-through.
    refusals = [line for line in collected if "::" in line
                and "every_bounded_flag_is_covered" not in line
                and "lets_the_right_file_through" not in line]
    stop_source = (ROOT / "tests" / "reliability" / "stop_run_test.py").read_text("utf-8")
    stops = len(re.findall(r'^        "[a-z ]+": _stop\(', stop_source, flags=re.M))
    points = re.search(r"^POINTS = \{(.*?)\}$", (ROOT / "tests" / "reliability" /
                                                 "disk_full_run_test.py").read_text("utf-8"),
                       flags=re.M | re.S)
    fills = len(re.findall(r'"\w+": \(', points.group(1)))
    expected = {
        "kinds of bad input": len(refusals),
        "stops of a run": stops,
        "disks filling": fills,
        "`kill -9`s during pushes": _figure("tests/reliability/crash_push_test.py",
                                            r"^KILLS = (\d+)$"),
        "gRPC clients": _figure("tests/reliability/serving_load_test.py", r"^CLIENTS = (\d+)$"),
    }
    found = {what: int(re.search(rf"(\d+) {re.escape(what)}", section).group(1))
             for what in expected}
    assert found == expected
