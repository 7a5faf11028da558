"""`claimsfm report`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm report' is not built yet")
