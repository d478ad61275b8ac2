"""Write docs/cli.md from the commands' own --help text.

    python docs/gen_cli.py          # rewrite docs/cli.md
A test fails when docs/cli.md is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from faceclust.cli import main

OUT = Path(__file__).with_name("cli.md")


def render() -> str:
    runner = CliRunner()
    parts = ["# Command-line reference", "",
             "Generated from `--help` by `python docs/gen_cli.py`; do not edit by hand.", ""]
    sections = [("faceclust", [])] + [(f"faceclust {name}", [name]) for name in sorted(main.commands)]
    for title, args in sections:
        result = runner.invoke(main, args + ["--help"], prog_name="faceclust", terminal_width=100)
        parts += [f"## `{title}`", "", "```text", result.output.rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")
