"""The command line: every command calls the services, none writes SQL of its own."""

from govtui.cli.main import main

__all__ = ["main"]
