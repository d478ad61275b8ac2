"""What several commands print the same way: per-file problems on stderr, the exit code for a
run that finished with problems, a decision's notes."""

from __future__ import annotations

import click

from faceclust.cli.errors import EXIT_PARTIAL
from faceclust.text import printable


def print_problems(summary: dict, shown: int = 5) -> None:
    """Per-file errors and warnings go to stderr whatever --quiet or --json say: a count and
    the first few (files that failed the same way before are counted, not listed again)."""
    errors = summary.get("errors", 0)
    if errors:
        click.echo(f"{errors} file{'s' if errors != 1 else ''} could not be read"
                   + (f" (the first {shown} below)" if errors > shown else "")
                   + "; 'faceclust status' lists them", err=True)
        for path, message in summary.get("error_samples", [])[:shown]:
            click.echo(f"  {printable(path)}: {printable(message)}", err=True)
    for warning in summary.get("warnings", []):
        click.echo(f"warning: {printable(warning)}", err=True)


def exit_for_problems(*summaries: dict) -> None:
    """Exit code 3 when the run finished but some files could not be read or were kept back."""
    if any(s.get("errors") or s.get("kept_missing") for s in summaries):
        raise click.exceptions.Exit(EXIT_PARTIAL)


def print_album_problems(summary: dict, shown: int = 5) -> None:
    for rel, message in summary.get("errors", [])[:shown]:
        click.echo(f"album entry {printable(rel)}: {printable(message)}", err=True)
    if len(summary.get("errors", [])) > shown:
        click.echo(f"... {len(summary['errors'])} album entries could not be written", err=True)


def done(message: str, decision) -> None:
    click.echo(printable(message))
    for note in decision.notes:
        click.echo(f"note: {printable(note)}", err=True)
