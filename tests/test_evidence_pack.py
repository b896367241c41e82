"""Evidence packs (issue 13): the same data gives a byte-identical zip; any byte changed in
any file of the pack is caught by `govtui evidence verify` and by the stock tools the README
names (sha256sum, grep, openssl); an old pack still verifies after the key is rotated; the
files match their JSON Schemas; a population that is not the one frozen at start is caught;
a client's pack over a period holds its grants' histories, pauses and campaigns."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import clock, db
from govtui.cli.main import main
from govtui.errors import ConfigurationError, PolicyError
from govtui.models import OutboxOp, ReviewItem
from govtui.security import signing
from govtui.services import (
    audit,
    evidence_csv,
    evidence_keys,
    evidence_pack,
    evidence_verify,
    pause,
    review_close,
    review_decisions,
    reviews,
)
from govtui.services.evidence_csv import COLUMNS
from govtui.services.workspace import Workspace
from govtui.vocabulary import ReviewDecision

from .conftest import FakeClock
from .factories import UNREACHABLE_TARGET, World, review_vendor
from .memory_keyring import MemoryKeyring

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
HAVE_OPENSSL = shutil.which("openssl") is not None


# --- the evidence key (the real one: evidence_keys, its private half in the keyring) --------


@dataclass
class SigningKey:
    world: World
    fingerprint: str

    def rotate(self, fake_clock: FakeClock) -> None:
        fake_clock.advance(seconds=31)  # a fresh TOTP step
        made = Workspace(self.world.engine, "root").act(
            evidence_keys.rotate, code=self.world.code("root")
        )
        self.fingerprint = made.fingerprint

    def private(self) -> str:
        with db.read_session(self.world.engine) as session:
            found = evidence_keys.signer(session)
        assert found is not None
        private = found.private()
        assert private is not None
        return private


@pytest.fixture
def key(world: World, fake_clock: FakeClock) -> SigningKey:
    made = Workspace(world.engine, "root").act(evidence_keys.init_key, code=world.code("root"))
    fake_clock.advance(seconds=31)
    return SigningKey(world, made.fingerprint)


# --- a campaign with every kind of item -----------------------------------------------------


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return review_vendor(engine, target=UNREACHABLE_TARGET)


def step(fake_clock: FakeClock) -> None:
    fake_clock.advance(seconds=31)


def grant(world: World, fake_clock: FakeClock, contractor: str, **kw: Any) -> int:
    gid = world.request(contractor, **kw)
    step(fake_clock)
    world.approve(gid, by="ann")
    return gid


def start(world: World, name: str = "q1") -> int:
    spec = reviews.CampaignSpec(
        name=name,
        client="acme",
        reviewers=("rita",),
        due_at=clock.now() + timedelta(days=14),
        if_no_answer="revoke",
    )
    started = Workspace(world.engine, "root").act(
        reviews.start, spec=spec, despite_drift="the test target is never synced"
    )
    return started.campaign_id


def decide(world: World, fake_clock: FakeClock, gids: list[int], decision: str, **kw: Any) -> None:
    Workspace(world.engine, "rita").act(
        review_decisions.decide,
        campaign="q1",
        selection=review_decisions.ItemSelection(grant_ids=gids),
        decision=ReviewDecision(decision),
        reason="reviewed with the project lead, still needed",
        code=None if decision == "revoke" else world.code("rita"),
        **kw,
    )
    step(fake_clock)


@dataclass
class Campaign:
    world: World
    keep: int
    revoke: int
    shorten: int
    unanswered: int


@pytest.fixture
def closed(world: World, fake_clock: FakeClock, key: SigningKey) -> Campaign:
    """q1 over four grants of acme: one kept, one revoked, one shortened, one unanswered
    (revoked at close: if no answer, revoke); then the directory confirms every removal."""
    keep = grant(world, fake_clock, "E1")
    revoke = grant(world, fake_clock, "E2")
    shorten = grant(world, fake_clock, "E3")
    unanswered = grant(
        world, fake_clock, "E1", scope="acme/rlhf/notes", reason='a, "quoted" reason'
    )
    step(fake_clock)
    start(world)
    step(fake_clock)
    decide(world, fake_clock, [keep], "keep")
    decide(world, fake_clock, [revoke], "revoke")
    decide(world, fake_clock, [shorten], "shorten", days=3)
    Workspace(world.engine, "root").act(review_close.close, campaign="q1", confirm_count=2)
    step(fake_clock)
    confirm_removals(world)
    Workspace(world.engine, "").act_system(review_close.settle, campaign="q1")
    step(fake_clock)
    return Campaign(world, keep, revoke, shorten, unanswered)


def confirm_removals(world: World) -> None:
    """What a sync's read-back records: every pending op done, now (no slapd needed here)."""
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(OutboxOp)
            .where(col(OutboxOp.state) == "pending")
            .values(state="done", done_at=clock.now())
        )


def export(world: World, path: Path, actor: str = "root", **kw: Any) -> evidence_pack.Pack:
    ws = Workspace(world.engine, actor)
    with path.open("wb") as out:
        if "client" in kw:
            return ws.read_as(evidence_pack.export_client, out=out, **kw)
        return ws.read_as(evidence_pack.export_campaign, campaign="q1", out=out, **kw)


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def rezip(source: Path, target: Path, changed: dict[str, bytes]) -> None:
    """The pack with some members' content replaced, everything else as it was."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w") as out:
        for info in z.infolist():
            out.writestr(info, changed.get(info.filename, z.read(info.filename)))


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


# --- determinism ------------------------------------------------------------------------------


def test_two_exports_of_the_same_data_are_byte_identical(
    closed: Campaign, tmp_path: Path, fake_clock: FakeClock
) -> None:
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    export(closed.world, a)
    fake_clock.advance(hours=5)
    export(closed.world, b, actor="rita")  # another exporter, another moment: same bytes
    assert a.read_bytes() == b.read_bytes()
    assert evidence_pack.file_sha256(a) == evidence_pack.file_sha256(b)
    with zipfile.ZipFile(a) as z:
        infos = z.infolist()
    assert [i.filename for i in infos] == [
        *evidence_pack.CAMPAIGN_DATA,
        "signing-key.pub",
        "README.txt",
        "SHA256SUMS",
        "manifest.json",
        "manifest.sig",
    ]
    assert len({i.date_time for i in infos}) == 1
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_a_change_in_the_data_changes_the_pack(
    closed: Campaign, tmp_path: Path, fake_clock: FakeClock
) -> None:
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    export(closed.world, a)
    with db.write_session(closed.world.engine) as session:
        session.execute(
            sa.update(ReviewItem)
            .values(reason="changed by SQL")
            .where(col(ReviewItem.reason).is_not(None))
        )
    export(closed.world, b)
    assert a.read_bytes() != b.read_bytes()


# --- contents ---------------------------------------------------------------------------------


def test_campaign_pack_contents(closed: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "q1.zip"
    pack = export(closed.world, path)
    files = members(path)
    population = rows(files["population.csv"])
    assert [int(r["grant_id"]) for r in population] == sorted(
        [closed.keep, closed.revoke, closed.shorten, closed.unanswered]
    )
    assert {r["state_at_start"] for r in population} == {"active"}
    assert {r["reviewer"] for r in population} == {"rita"}
    decisions = {int(r["grant_id"]): r for r in rows(files["decisions.csv"])}
    assert decisions[closed.keep]["decision"] == "keep"
    assert decisions[closed.keep]["outcome"] == "kept"
    assert decisions[closed.keep]["applied_at"] == ""  # close changed nothing of it
    assert decisions[closed.keep]["helper_requester"] == "req"
    assert decisions[closed.keep]["helper_approvers"] == "ann"
    assert decisions[closed.revoke]["outcome"] == "revoked"
    assert decisions[closed.shorten]["shorten_days"] == "3"
    assert decisions[closed.unanswered]["decision"] == ""
    assert decisions[closed.unanswered]["outcome"] == "no_answer_revoked"
    assert decisions[closed.unanswered]["original_reviewer"] == ""
    granted = rows(members(export_client_pack(closed, tmp_path))["grants.csv"])
    assert 'a, "quoted" reason' in [r["reason"] for r in granted]  # quoted, read back whole
    for gid in (closed.revoke, closed.unanswered):
        assert decisions[gid]["applied_at"].endswith("Z")
        assert decisions[gid]["directory_confirmed_at"].endswith("Z")
        assert decisions[gid]["applied_at"] <= decisions[gid]["directory_confirmed_at"]
    remediation = rows(files["remediation.csv"])
    assert {int(r["grant_id"]) for r in remediation} == {closed.revoke, closed.unanswered}
    assert all(r["directory_state"] == "done" and r["target"] == "ldap" for r in remediation)
    summary = files["summary.txt"].decode()
    assert "if no answer: revoke" in summary and "rita: 3/4" in summary
    assert "population_sha256: " in summary
    events = [json.loads(line) for line in files["audit.jsonl"].decode().splitlines()]
    assert events[0]["action"] == "review.start"
    assert "review.closed" in [e.get("action") for e in events]
    assert events[-1] == {"chain_head": pack.chain_head}
    manifest = json.loads(files["manifest.json"])
    assert manifest["subject"]["campaign"] == "q1"
    assert manifest["chain_head"]["seq"] == pack.chain_head["seq"] > 0
    assert manifest["database_id"] and manifest["govtui_version"]
    assert files["signing-key.pub"].decode().endswith(f"fingerprint: {pack.fingerprint}\n")
    assert "\n" not in files["manifest.json"].decode().rstrip("\n")


def export_client_pack(closed: Campaign, tmp_path: Path) -> Path:
    path = tmp_path / "acme.zip"
    export(
        closed.world, path, client="acme", first="2020-01-01", last=clock.now().date().isoformat()
    )
    return path


def test_a_reassigned_item_names_its_original_reviewer(closed: Campaign, tmp_path: Path) -> None:
    with db.write_session(closed.world.engine) as session:
        ravi = session.execute(sa.text("SELECT id FROM operator WHERE name = 'ravi'")).scalar_one()
        rita = session.execute(sa.text("SELECT id FROM operator WHERE name = 'rita'")).scalar_one()
        session.execute(
            sa.update(ReviewItem)
            .where(col(ReviewItem.grant_id) == closed.unanswered)
            .values(reviewer_id=ravi, original_reviewer_id=rita)
        )
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    files = members(path)
    decisions = {int(r["grant_id"]): r for r in rows(files["decisions.csv"])}
    assert decisions[closed.unanswered]["reviewer"] == "ravi"
    assert decisions[closed.unanswered]["original_reviewer"] == "rita"
    population = {int(r["grant_id"]): r for r in rows(files["population.csv"])}
    assert population[closed.unanswered]["reviewer"] == "rita"  # who it went to at start


def test_export_without_an_evidence_key_is_refused_before_any_row(
    world: World, fake_clock: FakeClock, tmp_path: Path
) -> None:
    grant(world, fake_clock, "E1")
    start(world)
    with pytest.raises(ConfigurationError, match="no evidence key"):
        export(world, tmp_path / "x.zip")


def test_export_is_refused_to_who_does_not_see_the_client(closed: Campaign, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="may not export evidence"):
        export(closed.world, tmp_path / "x.zip", actor="otto")


# --- verification -----------------------------------------------------------------------------


def test_a_pack_verifies_and_says_when_the_key_is_only_self_asserted(
    closed: Campaign, key: SigningKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    result = evidence_verify.verify(path, expect_key=key.fingerprint)
    assert result.ok, result.problems
    assert result.key_expected is True and result.events >= 5
    # The auditor's machine has no database: the command opens none.
    nowhere = f"sqlite:///{tmp_path}/missing/none.db"
    assert main(["--db", nowhere, "evidence", "verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED against the pack's own key only" in out
    assert "ONLY SELF-ASSERTED" in out
    assert not (tmp_path / "missing").exists()
    argv = ["--db", nowhere, "evidence", "verify", str(path), "--expect-key", key.fingerprint]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "signed by the expected key" in out and "SELF-ASSERTED" not in out
    other = signing.generate().fingerprint
    assert main(["--db", nowhere, "evidence", "verify", str(path), "--expect-key", other]) == 1
    assert f"not by the expected {other}" in capsys.readouterr().out


def shell(cmd: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """A README command as an auditor types it: a shell pipeline in the unzipped folder."""
    return subprocess.run(cmd, shell=True, cwd=folder, capture_output=True, text=True, check=False)  # noqa: S602


def stock_check(folder: Path) -> bool:
    """The README's stock commands, run in the extracted folder: True when all pass."""

    def ok(cmd: str) -> bool:
        return shell(cmd, folder).returncode == 0

    signature = ok(
        "openssl pkeyutl -verify -pubin -inkey signing-key.pub -rawin -in manifest.json "
        "-sigfile manifest.sig"
    )
    sums_named = ok(
        'grep -F "\\"name\\":\\"SHA256SUMS\\",\\"sha256\\":\\"$(sha256sum SHA256SUMS | cut -c1-64)\\"" '
        "manifest.json"
    )
    files = ok("sha256sum --strict -c SHA256SUMS")
    return signature and sums_named and files


def extract(path: Path, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with zipfile.ZipFile(path) as z:
        z.extractall(folder)


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed")
def test_the_readme_commands_pass_on_an_intact_pack(closed: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    folder = tmp_path / "x"
    extract(path, folder)
    assert stock_check(folder)
    readme = (folder / "README.txt").read_text()
    assert (
        "openssl pkeyutl -verify -pubin -inkey signing-key.pub -rawin -in manifest.json" in readme
    )
    assert "sha256sum --strict -c SHA256SUMS" in readme
    # The README's fingerprint command gives the key's fingerprint.
    out = shell(
        "openssl pkey -pubin -in signing-key.pub -outform DER | tail -c 32 | sha256sum",
        folder,
    ).stdout
    assert "SHA256:" + out[:64] in readme
    # And its population command recomputes the start event's digest.
    out = shell(
        "tail -n +2 population.csv | cut -d, -f1 | sort -n | paste -sd, - | tr -d '\\n' | sha256sum",
        folder,
    ).stdout
    assert f"population_sha256: {out[:64]}" in (folder / "summary.txt").read_text()


FLIPS_PER_FILE = 12


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl is not installed")
def test_any_byte_flipped_in_any_file_is_caught_both_ways(closed: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    original = members(path)
    rng = random.Random(13)
    folder, broken = tmp_path / "x", tmp_path / "broken.zip"
    checked = 0
    for name, data in original.items():
        positions = {0, len(data) - 1} | {rng.randrange(len(data)) for _ in range(FLIPS_PER_FILE)}
        for at in sorted(positions):
            changed = bytearray(data)
            changed[at] ^= 1 << rng.randrange(8)
            rezip(path, broken, {name: bytes(changed)})
            result = evidence_verify.verify(broken)
            assert not result.ok, f"{name}@{at} not caught by evidence verify"
            extract(broken, folder)
            assert not stock_check(folder), f"{name}@{at} not caught by the stock commands"
            checked += 1
    assert checked >= len(original) * 5


def test_extra_and_missing_files_are_caught(closed: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    extra = tmp_path / "extra.zip"
    shutil.copy(path, extra)
    with zipfile.ZipFile(extra, "a") as z:
        z.writestr("notes.txt", "planted")
    assert any("not in the manifest" in p for p in evidence_verify.verify(extra).problems)
    missing = tmp_path / "missing.zip"
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(missing, "w") as out:
        for info in z.infolist():
            if info.filename != "remediation.csv":
                out.writestr(info, z.read(info.filename))
    problems = evidence_verify.verify(missing).problems
    assert any("remediation.csv is listed in the manifest but missing" in p for p in problems)


def resign(path: Path, target: Path, key: SigningKey, changed: dict[str, bytes]) -> None:
    """A forger who can sign with the pack's own key: new contents, manifest re-hashed and
    re-signed consistently (what only the database's deeper checks can catch)."""
    files = members(path)
    files.update(changed)
    manifest = json.loads(files["manifest.json"])
    entries = []
    for entry in manifest["files"]:
        body = files[entry["name"]]
        if entry["name"] == "SHA256SUMS":
            body = evidence_pack.sums_text(
                [evidence_pack.PackFile(e["name"], e["sha256"], e["size"]) for e in entries]
            ).encode()
            files["SHA256SUMS"] = body
        entries.append(
            {"name": entry["name"], "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
        )
    manifest["files"] = entries
    raw = (json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n").encode()
    files["manifest.json"] = raw
    files["manifest.sig"] = signing.sign(key.private(), raw)
    with zipfile.ZipFile(target, "w") as out:
        for name, body in files.items():
            out.writestr(name, body)


def test_a_population_that_is_not_the_frozen_one_is_caught(
    closed: Campaign, key: SigningKey, tmp_path: Path
) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    population = members(path)["population.csv"].decode().splitlines(keepends=True)
    dropped = "".join(population[:-1]).encode()  # one grant left out, everything re-signed
    forged = tmp_path / "forged.zip"
    resign(path, forged, key, {"population.csv": dropped})
    result = evidence_verify.verify(forged, expect_key=key.fingerprint)
    assert [p for p in result.problems if "population does NOT match the review.start" in p]
    # The control: re-signing the untouched contents verifies.
    resign(path, forged, key, {})
    assert evidence_verify.verify(forged, expect_key=key.fingerprint).ok


def test_an_altered_audit_event_is_caught_even_when_re_signed(
    closed: Campaign, key: SigningKey, tmp_path: Path
) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    lines = members(path)["audit.jsonl"].decode().splitlines(keepends=True)
    first = json.loads(lines[0])
    first["details"]["item_count"] = 3
    lines[0] = json.dumps(first, sort_keys=True, separators=(",", ":")) + "\n"
    forged = tmp_path / "forged.zip"
    resign(path, forged, key, {"audit.jsonl": "".join(lines).encode()})
    problems = evidence_verify.verify(forged).problems
    assert any("was altered (its hash does not recompute)" in p for p in problems)


def test_an_old_pack_still_verifies_after_the_key_is_rotated(
    closed: Campaign, key: SigningKey, tmp_path: Path, fake_clock: FakeClock
) -> None:
    old, new = tmp_path / "old.zip", tmp_path / "new.zip"
    export(closed.world, old)
    first = key.fingerprint
    key.rotate(fake_clock)
    export(closed.world, new)
    assert evidence_verify.verify(old, expect_key=first).ok
    assert evidence_verify.verify(new, expect_key=key.fingerprint).ok
    assert not evidence_verify.verify(old, expect_key=key.fingerprint).ok
    # The database keeps the retired key listed, so it too still vouches for the old pack.
    raw = members(old)
    with db.read_session(closed.world.engine) as session:
        assert evidence_keys.verify(session, raw["manifest.json"], raw["manifest.sig"], first)
    assert old.read_bytes() != new.read_bytes()


# --- schemas ----------------------------------------------------------------------------------


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


def check_csv(name: str, data: bytes) -> None:
    row_schema = schema(f"evidence-{name.removesuffix('.csv')}.schema.json")
    header = data.decode().split("\n", 1)[0].split(",")
    assert header == list(row_schema["properties"]) == list(COLUMNS[name])
    found = rows(data)
    for row in found:
        jsonschema.validate(row, row_schema)


def test_every_file_matches_its_schema(closed: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "q1.zip"
    export(closed.world, path)
    client = tmp_path / "acme.zip"
    today = clock.now().date().isoformat()
    export(closed.world, client, client="acme", first="2020-01-01", last=today)
    for pack in (path, client):
        files = members(pack)
        jsonschema.validate(
            json.loads(files["manifest.json"]), schema("evidence-manifest.schema.json")
        )
        event_schema = schema("audit-event.schema.json")
        lines = files["audit.jsonl"].decode().splitlines()
        for line in lines[:-1]:
            jsonschema.validate(json.loads(line), event_schema)
        for name, data in files.items():
            if name.endswith(".csv"):
                check_csv(name, data)
    # A schema that says nothing would pass anything: a bad row must fail.
    bad = dict.fromkeys(COLUMNS["decisions.csv"], "")
    bad["decided_at"] = "yesterday"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("evidence-decisions.schema.json"))


# --- a client over a period -------------------------------------------------------------------


def test_client_period_pack_holds_histories_pauses_and_campaigns(
    closed: Campaign, key: SigningKey, tmp_path: Path, fake_clock: FakeClock
) -> None:
    world = closed.world
    Workspace(world.engine, "root").act(pause.pause, client="acme", reason="incident 42 at the lab")
    step(fake_clock)
    path = tmp_path / "acme.zip"
    today = clock.now().date()
    export(
        world,
        path,
        client="acme",
        first=(today - timedelta(days=30)).isoformat(),
        last=today.isoformat(),
    )
    assert evidence_verify.verify(path, expect_key=key.fingerprint).ok
    files = members(path)
    granted = {int(r["grant_id"]): r for r in rows(files["grants.csv"])}
    assert set(granted) == {closed.keep, closed.revoke, closed.shorten, closed.unanswered}
    assert granted[closed.revoke]["state"] == "revoked"
    assert "access review q1" in granted[closed.revoke]["end_reason"]
    history = rows(files["grant-history.csv"])
    of_keep = [r["event"] for r in history if int(r["grant_id"]) == closed.keep]
    assert of_keep[:2] == ["requested", "approval"] and "suspended" in of_keep
    pauses = rows(files["pauses.csv"])
    assert len(pauses) == 1 and pauses[0]["reason"] == "incident 42 at the lab"
    assert pauses[0]["removals_queued"] != ""
    campaigns = rows(files["campaigns.csv"])
    assert [c["name"] for c in campaigns] == ["q1"] and campaigns[0]["state"] == "closed"
    assert {int(r["grant_id"]) for r in rows(files["decisions.csv"])} == set(granted)
    actions = [
        json.loads(line).get("action") for line in files["audit.jsonl"].decode().splitlines()
    ]
    assert {"grant.request", "client.pause", "review.start"} <= set(actions)
    # A period before anything happened holds nothing but is still a signed pack.
    empty = tmp_path / "empty.zip"
    export(world, empty, client="acme", first="2020-01-01", last="2020-01-31")
    assert rows(members(empty)["grants.csv"]) == []
    assert evidence_verify.verify(empty).ok


def test_cli_export_writes_a_private_pack_and_its_hash(
    closed: Campaign, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed.world.engine.url.render_as_string(hide_password=False)
    out = tmp_path / "q1.zip"
    assert (
        main(
            [
                "--db",
                url,
                "--as",
                "root",
                "evidence",
                "export",
                "--campaign",
                "q1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"sha256 {evidence_pack.file_sha256(out)}" in printed
    assert out.stat().st_mode & 0o777 == 0o600
    # By id as well as by name; the same bytes.
    again = tmp_path / "again.zip"
    campaign_id = str(evidence_pack_id(closed.world))
    assert (
        main(
            [
                "--db",
                url,
                "--as",
                "root",
                "evidence",
                "export",
                "--campaign",
                campaign_id,
                "--out",
                str(again),
            ]
        )
        == 0
    )
    assert again.read_bytes() == out.read_bytes()
    capsys.readouterr()
    assert (
        main(
            [
                "--db",
                url,
                "--as",
                "root",
                "evidence",
                "export",
                "--client",
                "acme",
                "--out",
                str(again),
            ]
        )
        == 2
    )
    assert "--from DATE and --to DATE" in capsys.readouterr().err
    bad = ["--client", "acme", "--from", "2026-02-01", "--to", "2026-01-01"]
    assert main(["--db", url, "--as", "root", "evidence", "export", *bad, "--out", str(again)]) == 2
    assert again.read_bytes() == out.read_bytes()  # a refusal leaves the old file


def evidence_pack_id(world: World) -> int:
    with db.read_session(world.engine) as session:
        return db.ident(reviews.find_campaign(session, "q1"))


# --- the fast path writes what the reference path writes -------------------------------------


def test_the_fast_path_writes_the_bytes_of_one_cell_per_value(
    closed: Campaign, tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows read with raw times and written by csv.writer (evidence_csv.Sink.plain_rows, each
    distinct time formatted once) give the bytes of the reference: every column converted by
    SQLAlchemy and every value through evidence_csv.cell. Campaign and client packs."""
    world = closed.world
    Workspace(world.engine, "root").act(pause.pause, client="acme", reason="incident 42")
    step(fake_clock)
    today = clock.now().date()
    period = {"client": "acme", "first": (today - timedelta(days=30)).isoformat()}
    period["last"] = today.isoformat()
    fast_campaign, fast_client = tmp_path / "fast-c.zip", tmp_path / "fast-p.zip"
    export(world, fast_campaign)
    export(world, fast_client, **period)
    monkeypatch.setattr(evidence_pack, "_raw_times", lambda query: (query, ()))
    monkeypatch.setattr(
        evidence_csv.Sink, "plain_rows", lambda self, rows, times=(): self.rows_of(rows)
    )
    slow_campaign, slow_client = tmp_path / "slow-c.zip", tmp_path / "slow-p.zip"
    export(world, slow_campaign)
    export(world, slow_client, **period)
    assert members(fast_campaign) == members(slow_campaign)
    assert members(fast_client) == members(slow_client)
    assert fast_campaign.read_bytes() == slow_campaign.read_bytes()


@pytest.mark.parametrize(
    "raw",
    [
        "2026-03-01 12:34:56.000001",
        "2026-03-01 12:34:56",  # no fraction: SQLite text written by hand
        datetime(2026, 3, 1, 14, 34, 56, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 3, 1, 12, 34, 56, 5, tzinfo=UTC),
    ],
)
def test_a_raw_time_is_written_as_its_aware_value(raw: Any) -> None:
    times = evidence_csv.Times()
    at = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw).replace(tzinfo=UTC)
    assert times.text(raw) == audit.format_time(at) == evidence_csv.cell(at)
    assert times.text(raw) == audit.format_time(at)  # cached: the same
    assert times.at(raw) == at and times.text(None) is None


def test_the_time_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence_csv.Times, "LIMIT", 10)
    times = evidence_csv.Times()
    for n in range(100):
        assert times.text(f"2026-03-01 00:00:{n % 60:02d}.{n:06d}").endswith(f".{n:06d}Z")
    assert len(times._text) <= 10
