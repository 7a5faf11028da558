"""`claimsfm demo`: not built yet (see the open issue); registered so the command list is complete."""
import typer

from claimsfm.errors import ClaimsfmError


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo() -> None:
        """Not built yet."""
        raise ClaimsfmError("'claimsfm demo' is not built yet")
