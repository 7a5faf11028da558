"""`claimsfm evaluate`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm evaluate' is not built yet")
