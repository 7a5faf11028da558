"""`claimsfm` entry point: one Typer app, one module per command.

Each command parses its flags into a config and calls the library's `run(config)`. Heavy
libraries are imported inside the commands, so `claimsfm --help` stays fast.
"""
from __future__ import annotations

import sys

import typer

from claimsfm import __version__
from claimsfm.errors import ClaimsfmError, os_error

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # older typer runs on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError

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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """claimsfm: turn medical claims into foundation models and find the right model size per task."""


for module in (synth, ingest, pretrain, evaluate, sweep, report, demo):
    module.register(app)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> None:
    """Console script: run the app; user errors become one line on stderr and exit code 2.

    Errors are raised at their source as ClaimsfmError (file readers, store, checkpoints, config checks);
    a file-system error that escapes them (a read-only folder, `--out` under a regular file) still names its
    path here, and flag misuse (an unknown option, `--lr fast`) is one line instead of click's usage box.
    """
    try:
        code = app(args=argv, prog_name="claimsfm", standalone_mode=False)
    except ClaimsfmError as exc:
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except ClickException as exc:
        if isinstance(exc, NoArgsIsHelpError):  # `claimsfm` alone prints the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) is not None else ""
        typer.echo(f"error: {where}{_one_line(exc.format_message())} (see --help)", err=True)
        sys.exit(2)
    except OSError as exc:
        typer.echo(f"error: {_one_line(os_error(exc))}", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
