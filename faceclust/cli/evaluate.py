"""Scoring the people against labelled photos."""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceclust.cli.options import catalog_option, json_option, threads_option
from faceclust.cli.options import catalog_path as _catalog_path
from faceclust.text import printable


@click.command()
@threads_option
@click.argument("labelled_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@catalog_option
@json_option
def evaluate(labelled_dir, catalog, as_json):
    """Score the people against LABELLED_DIR, a folder per identity that was scanned and clustered.

    Prints BCubed and pairwise precision/recall/F1, NMI, people vs identities, and VAL@FAR
    (1e-3, 1e-2). Each photo's label goes to one face; other faces are unscored bystanders.
    """
    from faceclust.evaluate import evaluate_library

    result = evaluate_library(_catalog_path(catalog), labelled_dir)
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, value in result.items():
        click.echo(f"{key:32s} {value:.4f}" if isinstance(value, float) else printable(f"{key:32s} {value}"))


COMMANDS = (evaluate,)
