"""A command imports only the command module that registers it (govtui.cli.main's
COMMAND_MODULES): `govtui sync` from cron or a pause should not spend its start-up loading the
grant, pause, import and demo services. The table must match what the modules register, or
a command would vanish from the command line."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

# The package exports the function `main`, which hides the module of the same name.
cli_main = importlib.import_module("govtui.cli.main")


def _registered(module_name: str) -> list[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module_name).register(sub)
    return list(sub.choices)


def test_the_table_names_what_each_module_registers() -> None:
    for name, commands in cli_main.COMMAND_MODULES.items():
        assert tuple(_registered(name)) == commands, name
    everything = cli_main.build_parser()
    (sub,) = [a for a in everything._actions if isinstance(a, argparse._SubParsersAction)]
    listed = [c for commands in cli_main.COMMAND_MODULES.values() for c in commands]
    assert list(sub.choices) == listed


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["sync"], "sync"),
        (["--db", "sqlite:///x", "--as", "root", "sync", "--watch"], "sync"),
        (["--db=sqlite:///x", "grant", "list"], "grant"),
        (["--help", "sync"], None),
        (["--bogus", "sync"], None),
        ([], None),
    ],
)
def test_the_command_word_is_found_after_the_global_options(
    argv: list[str], word: str | None
) -> None:
    assert cli_main._command_word(argv) == word


def _loaded_after(argv: list[str]) -> set[str]:
    code = (
        "import json, sys\n"
        "from govtui.cli.main import build_parser\n"
        f"build_parser({argv!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('govtui'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(done.stdout))


def test_sync_loads_only_what_it_needs() -> None:
    loaded = _loaded_after(["--db", "sqlite:///x", "sync"])
    assert "govtui.services.sync" in loaded
    for unneeded in (
        "govtui.services.grants",
        "govtui.services.pause",
        "govtui.services.contractor_import",
        "govtui.services.demo",
        "govtui.cli.grant_commands",
        "govtui.cli.people_commands",
    ):
        assert unneeded not in loaded, unneeded


def test_help_and_unknown_commands_still_see_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    loaded = _loaded_after(["--help"])
    assert set(cli_main.COMMAND_MODULES) <= loaded
    with pytest.raises(SystemExit) as caught:
        cli_main.main(["no-such-command"])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in error and "reconcile" in error
