"""`claimsfm synth`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm synth' is not built yet")
