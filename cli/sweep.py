"""`claimsfm sweep`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm sweep' is not built yet")
