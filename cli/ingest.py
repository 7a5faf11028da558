"""`claimsfm ingest`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm ingest' is not built yet")
