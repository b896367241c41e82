"""The command line: every command through the services; bad input gets one clear line on
stderr, exit code 2, and the database as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from govtui import db
from govtui.cli import main

from .conftest import snapshot

GOVTUI = [sys.executable, "-m", "govtui"]


def run(url: str, *args: str, actor: str | None = "root") -> int:
    prefix = ["--db", url] + (["--as", actor] if actor else [])
    return main([*prefix, *args])


@pytest.fixture
def seeded(db_url: str) -> str:
    assert run(db_url, "init", actor=None) == 0
    assert run(db_url, "operator", "add", "root", "--role", "admin") == 0
    assert run(db_url, "client", "add", "acme") == 0
    assert run(db_url, "project", "add", "acme/rlhf") == 0
    assert run(db_url, "scope", "add", "acme/rlhf/pairs", "--sensitivity", "restricted") == 0
    assert (
        run(
            db_url,
            "contractor",
            "add",
            "E1",
            "--name",
            "Ada",
            "--email",
            "ada@x.example",
            "--uid",
            "ada",
            "--contract-end",
            "2027-01-31",
        )
        == 0
    )
    return db_url


def test_lists_as_json(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(seeded, "scope", "list", "--json") == 0
    scopes = json.loads(capsys.readouterr().out)
    assert scopes[0]["path"] == "acme/rlhf/pairs" and scopes[0]["max_grant_days"] == 14
    assert run(seeded, "contractor", "list", "--json", "--search", "ada") == 0
    assert [c["external_id"] for c in json.loads(capsys.readouterr().out)] == ["E1"]
    assert run(seeded, "operator", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["roles"] == ["admin"]
    assert run(seeded, "client", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "active"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["client", "add", "acme"], "client 'acme' exists already"),
        (["client", "add", "x)(uid=*"], "invalid client name"),
        (["project", "add", "nope/p"], "unknown client 'nope'"),
        (
            ["scope", "add", "acme/rlhf/x", "--sensitivity", "internal", "--max-days", "91"],
            "cap of 90",
        ),
        (
            [
                "contractor",
                "add",
                "E2",
                "--name",
                "B",
                "--email",
                "b@x.example",
                "--uid",
                "ada",
                "--contract-end",
                "2027-01-01",
            ],
            "directory uid 'ada' belongs to contractor 'E1'",
        ),
        (
            [
                "contractor",
                "add",
                "E2",
                "--name",
                "B",
                "--email",
                "b@x.example",
                "--uid",
                "b",
                "--contract-end",
                "31/01/2027",
            ],
            "invalid contract end",
        ),
        (["contractor", "show", "E404"], "unknown contractor 'E404'"),
        (
            # The input is checked before the code: a bad name never costs one.
            ["operator", "add", "x", "--role", "approver", "--approves", "ghost", "--totp", "1"],
            "unknown client 'ghost'",
        ),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(
    seeded: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    engine = db.make_engine(seeded)
    before = snapshot(engine)
    capsys.readouterr()
    assert run(seeded, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("govtui: error: ")
    assert snapshot(engine) == before
    engine.dispose()


def test_unknown_actor_is_refused(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(seeded, "client", "add", "other", actor="mallory") == 2
    assert "unknown operator 'mallory'" in capsys.readouterr().err


def test_actor_comes_from_environment(seeded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVTUI_OPERATOR", "root")
    assert run(seeded, "client", "add", "other", actor=None) == 0


def test_uninitialised_database_says_run_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(f"sqlite:///{tmp_path / 'new.db'}", "client", "list") == 2
    assert "govtui init" in capsys.readouterr().err


def test_import_with_bad_row_exits_2_and_lists_rows(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "external_id,name,email,directory_uid,contract_end\nE5,Ok,ok@x.example,ok,2027-01-01\nE6,Bad,bad,bad,2027-01-01\n"
    )
    engine = db.make_engine(seeded)
    before = snapshot(engine)
    assert run(seeded, "contractor", "import", str(path)) == 2
    err = capsys.readouterr().err
    assert "1 bad row(s), nothing imported" in err and "line 3: invalid email 'bad'" in err
    assert snapshot(engine) == before
    path.write_text(
        "external_id,name,email,directory_uid,contract_end\nE5,Ok,ok@x.example,ok,2027-01-01\n"
    )
    assert run(seeded, "contractor", "import", str(path)) == 0
    assert "1 created, 0 updated" in capsys.readouterr().out
    engine.dispose()


def test_audit_verify_and_export(
    seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(seeded, "audit", "verify") == 0
    assert "audit chain intact: 5 events verified" in capsys.readouterr().out
    out = tmp_path / "audit.jsonl"
    assert run(seeded, "audit", "export", "--out", str(out)) == 0
    lines = out.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    engine = db.make_engine(seeded)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE audit_event SET object = 'client:evil' WHERE seq = 2")
    engine.dispose()
    capsys.readouterr()
    assert run(seeded, "audit", "verify") == 1
    assert "BROKEN at event 2" in capsys.readouterr().out


def test_real_executable_help_and_exit_codes(tmp_path: Path) -> None:
    help_text = subprocess.run(
        [*GOVTUI, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "init",
        "demo",
        "client",
        "project",
        "scope",
        "contractor",
        "operator",
        "audit",
    ):
        assert command in help_text
    url = f"sqlite:///{tmp_path / 'x.db'}"
    env_run = lambda *a: subprocess.run([*GOVTUI, "--db", url, *a], capture_output=True, text=True)  # noqa: E731
    assert env_run("init").returncode == 0
    bad = env_run("--as", "nobody", "client", "add", "acme")
    assert (
        bad.returncode == 2
        and bad.stderr.strip()
        == "govtui: error: unknown operator 'nobody' (add one with `govtui operator add`)"
    )
    assert env_run("scope", "add", "a/b/c", "--sensitivity", "top").returncode == 2  # argparse


def test_demo_loads_and_verifies(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db_url, "init", actor=None) == 0
    assert run(db_url, "demo", "--contractors", "50", actor=None) == 0
    assert run(db_url, "audit", "verify", actor="alex") == 0
    assert run(db_url, "demo", actor=None) == 2  # only into an empty database
    assert "empty" in capsys.readouterr().err
