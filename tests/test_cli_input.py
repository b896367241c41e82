"""Issue 11, findings 6 (CLI side) and 7: hostile text is refused at input and escaped on
output, and every bad input is one line on stderr, exit 2, with the database as it was (never
a traceback, never a megabyte echoed back). Each case the security test found is named here."""

from __future__ import annotations

import errno
import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from govtui import db
from govtui.cli import main
from govtui.errors import InputError
from govtui.models import ClientPause, Contractor
from govtui.services import contractor_import, contractors, grants, operators, pause, validation

from .conftest import snapshot
from .factories import World

MOVE_UP_AND_ERASE = "\x1b[1A\x1b[2K"
FAKE = f"x{MOVE_UP_AND_ERASE}\x1b[32mclient other is active\x1b[0m"
CSV_HEADER = "external_id,name,email,directory_uid,contract_end\n"


def cli(world: World, *args: str, actor: str = "root") -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    try:
        return main(["--db", url, "--as", actor, *args])
    except SystemExit as exited:  # argparse's refusals
        return int(exited.code or 0)


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in err and "\x1b" not in err
    return lines[0]


def refused(
    world: World, capsys: pytest.CaptureFixture[str], *args: str, actor: str = "root"
) -> str:
    """Run a command that must be refused: exit 2, one line, nothing written; the line."""
    before = snapshot(world.engine)
    capsys.readouterr()
    assert cli(world, *args, actor=actor) == 2
    line = one_error_line(capsys.readouterr().err)
    assert snapshot(world.engine) == before
    return line


# --- finding 6: ESC and bidi in reasons, names and emails -----------------------------------


def test_an_esc_reason_that_faked_client_status_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(world, capsys, "client", "pause", "other", "--reason", FAKE, "--no-sync")
    assert "control character U+001B" in line


@pytest.mark.parametrize(
    "char", ["\x1b", "\x9b", "\x7f", "\x00", "\n", "\u202e", "\u2066", "\u200f", "\u061c"]
)
def test_services_refuse_control_and_bidi_characters(world: World, char: str) -> None:
    """The TUI's forms and the import go through these, not through the command line."""
    with db.write_session(world.engine) as session:
        root = operators.find(session, "root")
        for call in (
            lambda: pause.pause(session, root, client="other", reason=f"r{char}x"),
            lambda: grants.request(
                session,
                root,
                contractor="E1",
                scope_path="acme/rlhf/notes",
                access="read",
                days=3,
                reason=f"why{char}",
            ),
            lambda: contractors.add(
                session,
                root,
                external_id="E9",
                name="Cy",
                email=f"c{char}y@x.example",
                directory_uid="cy",
                contract_end="2027-01-01",
            ),
            lambda: contractors.add(
                session,
                root,
                external_id="E9",
                name=f"Cy{char}",
                email="cy@x.example",
                directory_uid="cy",
                contract_end="2027-01-01",
            ),
            lambda: operators.add(session, root, name=f"op{char}", roles=["requester"]),
        ):
            with pytest.raises(InputError, match=r"invalid|control"):
                call()
        session.rollback()


def test_an_old_row_with_escape_codes_prints_escaped(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows written before input refused them: client status, tables and JSON show them
    visibly, never raw."""
    assert cli(world, "client", "pause", "other", "--reason", "audit", "--no-sync") == 0
    with db.write_session(world.engine) as session:
        session.execute(sa.update(ClientPause).values(reason=FAKE))
        session.execute(
            sa.update(Contractor)
            .where(Contractor.external_id == "E1")
            .values(name="Ada\u202eevil\x9b2J", email="a\x1b[2J@x.example")
        )
    capsys.readouterr()
    assert cli(world, "client", "status", "other") == 0
    assert cli(world, "contractor", "list") == 0
    assert cli(world, "contractor", "show", "E1") == 0
    out = capsys.readouterr().out
    assert "\\x1b[1A\\x1b[2K" in out and "Ada\\u202eevil\\x9b2J" in out
    assert cli(world, "contractor", "list", "--json") == 0
    listed_text = capsys.readouterr().out
    for text in (out, listed_text):
        assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    listed = json.loads(listed_text)
    assert listed[0]["name"] == "Ada\u202eevil\x9b2J"  # JSON escapes keep the value itself


# --- finding 7: integers, dates, nesting, URLs, files, databases ----------------------------


@pytest.mark.parametrize(
    "args",
    [
        [
            "grant",
            "request",
            "E1",
            "acme/rlhf/notes",
            "--access",
            "read",
            "--days",
            "9" * 30,
            "--reason",
            "r",
        ],
        ["grant", "extend", "1", "--days", "-" + "9" * 25, "--reason", "r"],
        ["grant", "show", "99999999999999999999999"],
        ["grant", "revoke", "2147483648", "--reason", "r"],
        ["grant", "approve", "1", "9" * 4000, "--totp", "000000"],
        ["grant", "list", "--limit", "99999999999999999999999"],
        ["grant", "list", "--expiring-within", "99999999999999999999999"],
        ["contractor", "list", "--limit", "-1"],
        ["scope", "add", "acme/rlhf/z", "--sensitivity", "internal", "--max-days", "1e9"],
    ],
)
def test_integer_overflow_is_refused_by_argparse_in_one_line(
    world: World, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    line = refused(world, capsys, *args)
    assert "whole number" in line or "out of range" in line
    assert len(line) < 300  # a 5000-digit number is not echoed


def test_a_contract_end_of_9999_is_refused_at_add_and_import(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = refused(
        world,
        capsys,
        "contractor",
        "add",
        "E9",
        "--name",
        "Cy",
        "--email",
        "cy@x.example",
        "--uid",
        "cy",
        "--contract-end",
        "9999-12-31",
    )
    assert "from 2000-01-01 to 2100-12-31" in line
    csv = tmp_path / "c.csv"
    csv.write_text(CSV_HEADER + "E9,Cy,cy@x.example,cy,9999-12-31\n")
    assert "2100-12-31" in refused(world, capsys, "contractor", "import", str(csv))


def test_a_contractor_stored_with_9999_gives_one_line_not_a_traceback(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(Contractor)
            .where(Contractor.external_id == "E1")
            .values(contract_end=date(9999, 12, 31))
        )
    line = refused(
        world,
        capsys,
        "grant",
        "request",
        "E1",
        "acme/rlhf/notes",
        "--access",
        "read",
        "--days",
        "3",
        "--reason",
        "r",
        actor="req",
    )
    assert line.startswith("govtui: error:")


def test_json_nested_100000_deep_is_one_line(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in refused(world, capsys, "contractor", "import", str(deep))
    digits = tmp_path / "digits.json"
    digits.write_text("[" + "1" * 5000 + "]")
    assert "not valid JSON" in refused(world, capsys, "contractor", "import", str(digits))


@pytest.mark.parametrize(
    ("limit", "value", "content", "message"),
    [
        (
            "MAX_FILE_BYTES",
            100,
            CSV_HEADER + "E9,Cy,cy@x.example,cy,2027-01-01\n" * 5,
            "larger than",
        ),
        (
            "MAX_ROWS",
            2,
            CSV_HEADER + "".join(f"E{i},C,c{i}@x.example,c{i},2027-01-01\n" for i in range(3)),
            "at most",
        ),
        ("MAX_ROWS", 2, json.dumps([{"external_id": f"E{i}"} for i in range(3)]), "at most 2"),
    ],
)
def test_import_limits(
    world: World,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: str,
    value: int,
    content: str,
    message: str,
) -> None:
    monkeypatch.setattr(contractor_import, limit, value)
    path = tmp_path / ("c.json" if content.startswith("[") else "c.csv")
    path.write_text(content)
    assert message in refused(world, capsys, "contractor", "import", str(path))


def test_a_megabyte_field_is_not_echoed(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(CSV_HEADER + f"E9,{'N' * 100_000},cy@x.example,cy,2027-01-01\n")
    line = refused(world, capsys, "contractor", "import", str(path))
    assert "name is 100000 characters long" in line and len(line) < 400
    path.write_text(CSV_HEADER + f"E9,Cy,{'e' * 900}@x,cy,2027-01-01\n")
    line = refused(world, capsys, "contractor", "import", str(path))
    assert "invalid email" in line and len(line) < 400


def test_a_megabyte_value_is_cut_in_service_messages() -> None:
    for call in (
        lambda: validation.name("A" * 1_000_000, "client"),
        lambda: validation.email("a" * 1_000_000),
        lambda: validation.iso_date("2" * 1_000_000),
        lambda: validation.external_id("E" * 1_000_000),
        lambda: validation.choice("x" * 1_000_000, ("read", "write"), "access"),
    ):
        with pytest.raises(InputError) as caught:
            call()
        assert len(str(caught.value)) < 250


def test_a_megabyte_on_the_command_line_is_not_echoed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(world, capsys, "client", "add", "A" * 1_000_000)
    assert "1000000 characters long" in line and len(line) < 200


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ldap://127.0.0.1:99999", "port 99999 is not 1-65535"),
        ("ldap://[::1", "invalid directory URL"),
    ],
)
def test_directory_add_with_a_bad_url_is_one_line(
    world: World, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    line = refused(
        world,
        capsys,
        "directory",
        "add",
        "corp",
        "--url",
        url,
        "--bind-dn",
        "cn=a,dc=x",
        "--users-base",
        "ou=p,dc=x",
        "--groups-base",
        "ou=g,dc=x",
        "--insecure-plaintext",
        "--no-check",
        "--password-stdin",
    )
    assert message in line


def test_audit_export_into_a_missing_folder_or_onto_a_folder_is_one_line(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refused(world, capsys, "audit", "export", "--out", str(tmp_path / "missing" / "a.jsonl"))
    refused(world, capsys, "audit", "export", "--out", str(tmp_path))


def test_a_db_that_is_not_sqlite_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 200)
    assert main(["--db", f"sqlite:///{text}", "--as", "root", "client", "list"]) == 2
    assert "database" in one_error_line(capsys.readouterr().err)
    assert text.read_text() == "not a database\n" * 200


def test_an_environment_oserror_is_exit_1_and_a_wrong_path_exit_2(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from govtui.cli import catalog_commands

    def disk_full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x")

    monkeypatch.setattr(catalog_commands, "run_client_list", disk_full)
    assert cli(world, "client", "list") == 1
    assert "No space left on device: '/data/x'" in one_error_line(capsys.readouterr().err)

    def missing(*_args: object) -> int:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "x" * 10_000)

    monkeypatch.setattr(catalog_commands, "run_client_list", missing)
    assert cli(world, "client", "list") == 2
    assert len(one_error_line(capsys.readouterr().err)) < 200


def test_argparse_refusals_are_one_line(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(world, capsys, "grant", "list", "--state", "x" * 3000)
    assert "invalid choice" in line and len(line) < 600


def test_a_long_value_echoed_by_a_service_is_cut_to_80(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(world, capsys, "contractor", "show", "x" * 4000)
    assert "unknown contractor" in line and len(line) < 150


def test_a_value_of_double_dash_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse turns `--reason=--` into an empty list, which no service expects (fuzz find)."""
    from govtui.cli.main import main as cli_main

    assert cli_main(["grant", "approve", "1", "--totp=--"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has `--` as its value" in err
