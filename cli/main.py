"""`claimsfm` entry point: one Typer app, one module per command.

Each command parses its flags into a config and calls the library's `run(config)`. Heavy
libraries are imported inside the commands, so `claimsfm --help` stays fast.
"""
from __future__ import annotations

import sys

import typer

from claimsfm import __version__
from claimsfm.errors import ClaimsfmError

from . import demo, evaluate, ingest, pretrain, report, sweep, synth

app = typer.Typer(
    name="claimsfm",
    help="Foundation models from medical claims: synth | ingest | pretrain | evaluate | sweep | report | demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"claimsfm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """claimsfm: turn medical claims into foundation models and find the right model size per task."""


for module in (synth, ingest, pretrain, evaluate, sweep, report, demo):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console script: run the app; user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="claimsfm", standalone_mode=True)
    except ClaimsfmError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
