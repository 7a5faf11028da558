"""`claimsfm pretrain`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm pretrain' is not built yet")
