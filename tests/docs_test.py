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
