"""The flag reference, docs/flags.md, rendered from the commands' own `--help`.

`python -m pipeline.cli.reference > docs/flags.md` (or `make docs`) writes it; a test checks
that the committed page is what this renders, so the reference cannot drift from the flags.
"""

from __future__ import annotations

import click

from pipeline.cli import cli

WIDTH = 100


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[click.Context, click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx, terminal_width=WIDTH,
                            max_content_width=WIDTH)
        found.append((sub, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, sub))
    return found


def render_reference() -> str:
    """Markdown: every command's `--help`, in the order `imgpipe --help` lists them."""
    root = click.Context(cli, info_name="imgpipe", terminal_width=WIDTH, max_content_width=WIDTH,
                         **cli.context_settings)
    lines = ["# Flag reference", "",
             "Generated from `imgpipe --help` by `make docs`; do not edit by hand.", "",
             "```", cli.get_help(root), "```"]
    for ctx, command in _commands(cli, root):
        lines += ["", f"## {ctx.command_path}", "", "```", command.get_help(ctx), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    click.echo(render_reference(), nl=False)
