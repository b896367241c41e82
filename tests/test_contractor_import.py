"""Contractor import: whole file checked first, every bad row reported, all or nothing,
known contractors updated rather than duplicated."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import InputError
from govtui.models import Contractor, Operator
from govtui.services import contractor_import, contractors

from .conftest import snapshot

HEADER = "external_id,name,email,directory_uid,contract_end\n"
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "contractor-import.schema.json").read_text()
)


def _run(engine: Engine, admin: Operator, path: Path) -> contractor_import.ImportResult:
    rows, digest = contractor_import.parse(path)
    with db.write_session(engine) as session:
        return contractor_import.apply(session, admin, rows, source=str(path), sha256=digest)


def _count(engine: Engine) -> int:
    with db.read_session(engine) as session:
        return contractors.count(session)


def test_csv_import_creates_then_updates(engine: Engine, admin: Operator, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text(
        HEADER
        + "E1,Ada Lovelace,ada@x.example,ada,2027-01-31\nE2,Bo Chen,bo@x.example,bo,2027-02-01\n"
    )
    assert _run(engine, admin, first) == contractor_import.ImportResult(2, 0, _sha(first))
    second = tmp_path / "b.csv"
    second.write_text(
        HEADER + "E2,Bo Chen-Li,bo@x.example,bo,2028-01-01\nE3,Cy,cy@x.example,cy,2027-05-05\n"
    )
    result = _run(engine, admin, second)
    assert (result.created, result.updated) == (1, 1)
    with db.read_session(engine) as session:
        bo = contractors.find(session, "E2")
    assert bo.name == "Bo Chen-Li" and str(bo.contract_end) == "2028-01-01"
    assert _count(engine) == 3


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_bad_row_among_good_ones_imports_nothing(
    engine: Engine, admin: Operator, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        HEADER
        + "E1,Ada,ada@x.example,ada,2027-01-31\n"
        + "E2,Bo,not-an-email,bo,2027-01-31\n"
        + "E3,Cy,cy@x.example,Cy Upper,2027-01-31\n"
        + "E4,Di,di@x.example,di,2027-13-01\n"
        + "E1,Ed,ed@x.example,ed,2027-01-31\n"
        + "E6,Fe,fe@x.example,ada,2027-01-31\n"
        + "E7,Gi,gi@x.example,gi,2027-01-31,extra\n"
        + "E8,Ha,ha@x.example,ha,2027-01-31\n"
    )
    before = snapshot(engine)
    with pytest.raises(InputError) as caught:
        _run(engine, admin, path)
    message = str(caught.value)
    assert "6 bad row(s), nothing imported" in message
    for expected in (
        "line 3: invalid email",
        "line 4: invalid directory uid",
        "line 5: invalid contract_end",
        "line 6: external_id 'E1' repeats line 2",
        "line 7: directory_uid 'ada' repeats line 2",
        "line 8: more cells",
    ):
        assert expected in message
    assert snapshot(engine) == before


def test_uid_taken_by_another_contractor_imports_nothing(
    engine: Engine, admin: Operator, tmp_path: Path
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "E1,Ada,ada@x.example,ada,2027-01-31\n")
    _run(engine, admin, path)
    clash = tmp_path / "b.csv"
    clash.write_text(
        HEADER + "E5,Ok,ok@x.example,ok,2027-01-31\nE9,Ann,ann@x.example,ada,2027-01-31\n"
    )
    before = snapshot(engine)
    with pytest.raises(InputError, match="line 3: directory_uid 'ada' belongs to contractor 'E1'"):
        _run(engine, admin, clash)
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("external_id,name\nE1,Ada\n", "bad CSV header"),
        (HEADER, "no contractor rows"),
        ('{"external_id": "E1"}', "array"),
        ("[{", "not valid JSON"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / ("f.json" if content.startswith(("{", "[")) else "f.csv")
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        contractor_import.parse(path)


def test_json_import_matches_the_schema(engine: Engine, admin: Operator, tmp_path: Path) -> None:
    rows = [
        {
            "external_id": "J1",
            "name": "Jo",
            "email": "jo@x.example",
            "directory_uid": "jo",
            "contract_end": "2027-03-03",
        },
        {
            "external_id": "J2",
            "name": "Ju",
            "email": "ju@x.example",
            "directory_uid": "ju",
            "contract_end": "2027-03-04",
        },
    ]
    jsonschema.validate(rows, SCHEMA)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(rows))
    assert _run(engine, admin, path).created == 2
    bad = [dict(rows[0], role="admin")]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="item 1: unknown field role"):
        contractor_import.parse(path)


def test_large_import_uses_bulk_statements(engine: Engine, admin: Operator, tmp_path: Path) -> None:
    """20,000 rows in a handful of statements, not one per row (timing lives in the benchmark)."""
    path = tmp_path / "big.csv"
    path.write_text(
        HEADER + "".join(f"B{i},P {i},p{i}@x.example,p{i},2027-06-01\n" for i in range(20_000))
    )
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert _run(engine, admin, path).created == 20_000
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO CONTRACTOR")]
    assert 1 <= len(inserts) <= 40
    with db.read_session(engine) as session:
        assert (
            session.execute(sa.select(sa.func.count()).select_from(Contractor)).scalar_one()
            == 20_000
        )
