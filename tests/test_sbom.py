"""scripts/sbom: a CycloneDX 1.5 SBOM of requirements.lock that validates against the vendored
schema offline (bom-1.5 with the spdx and jsf schemas it $refs, resolved from a local
registry, never fetched), carries every pin's hashes, purl and licence, is the same bytes
twice, and is written 0600 or refused in one line. Also govtui/lockfile.py, which reads the
locks for it and for scripts/lock's wheel check."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from email.message import Message
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from govtui import lockfile
from govtui.errors import InputError
from tests.install_support import script

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "cyclonedx"
SCRIPT = ROOT / "scripts" / "sbom.py"
LOCK = ROOT / "requirements.lock"


@cache
def validator() -> jsonschema.Draft7Validator:
    resources = []
    for name in ("bom-1.5.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"):
        contents = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents, DRAFT7)))

    def refuse(uri: str) -> Resource[Any]:
        raise AssertionError(f"the schema tried to fetch {uri}")

    registry: Registry[Any] = Registry(retrieve=refuse).with_resources(resources)  # type: ignore[call-arg]
    schema = json.loads((SCHEMAS / "bom-1.5.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, registry=registry)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


@cache
def real_bom() -> dict[str, Any]:
    done = run()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # every runtime pin is installed here at its locked version
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_the_sbom_of_the_runtime_lock_validates_against_cyclonedx_1_5() -> None:
    bom = real_bom()
    errors = [e.message for e in validator().iter_errors(bom)]
    assert errors == []
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.5"
    assert bom["metadata"]["component"]["name"] == "govtui"


def test_every_pin_is_a_component_with_purl_hashes_and_licence() -> None:
    bom = real_bom()
    pins = {p.name: p for p in lockfile.read(LOCK)}
    components = {c["name"]: c for c in bom["components"]}
    assert set(components) == set(pins)
    for name, pin in pins.items():
        component = components[name]
        assert component["version"] == pin.version
        assert component["purl"] == f"pkg:pypi/{name}@{pin.version}"
        assert component["bom-ref"] == component["purl"]
        assert [h["content"] for h in component["hashes"]] == list(pin.hashes)
        assert {h["alg"] for h in component["hashes"]} == {"SHA-256"}
        assert component["licenses"], f"{name} has no licence"
    # The runtime closure is "required"; the build-only setuptools is not.
    required = sorted(c["name"] for c in bom["components"] if c["scope"] == "required")
    assert required == sorted(p.name for p in lockfile.runtime_closure(list(pins.values())))
    assert len(required) == 34
    assert components["setuptools"]["scope"] == "excluded"
    props = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert props["govtui:runtime-closure:count"] == "34"


def test_licences_come_from_expression_field_or_classifier() -> None:
    components = {c["name"]: c for c in real_bom()["components"]}
    assert components["cryptography"]["licenses"] == [{"expression": "Apache-2.0 OR BSD-3-Clause"}]
    assert components["pyasn1"]["licenses"] == [{"license": {"id": "BSD-2-Clause"}}]  # License
    assert components["ldap3"]["licenses"] == [{"license": {"name": "LGPL v3"}}]  # not SPDX
    assert components["mdurl"]["licenses"] == [{"license": {"id": "MIT"}}]  # classifier only


def test_the_dependency_graph_is_the_locks_via_comments() -> None:
    graph = {d["ref"]: set(d["dependsOn"]) for d in real_bom()["dependencies"]}
    assert "pkg:pypi/textual@8.2.8" in graph["govtui@0.1.0"]
    assert "pkg:pypi/pyasn1@0.6.5" in graph["pkg:pypi/ldap3@2.9.1"]
    assert "pkg:pypi/setuptools@84.2.1" not in set().union(*graph.values())
    refs = {c["bom-ref"] for c in real_bom()["components"]} | {"govtui@0.1.0"}
    assert set(graph) == refs


def test_the_validator_is_real_and_resolves_the_spdx_schema() -> None:
    bom = copy.deepcopy(real_bom())
    bom["components"][0]["licenses"] = [{"license": {"id": "Not-An-SPDX-Id"}}]
    assert not validator().is_valid(bom)  # the id enum lives in spdx.schema.json
    bom = copy.deepcopy(real_bom())
    bom["components"][0]["hashes"][0]["content"] = "not hex"
    assert not validator().is_valid(bom)
    bom = copy.deepcopy(real_bom())
    bom["specVersion"] = "1.5"
    bom["components"][0]["scope"] = "sometimes"
    assert not validator().is_valid(bom)


def test_same_lock_same_bytes_and_a_timestamp_only_from_source_date_epoch() -> None:
    first, second = run(), run()
    assert first.stdout == second.stdout
    assert "timestamp" not in json.loads(first.stdout)["metadata"]
    dated = run(env={"SOURCE_DATE_EPOCH": "1767225600"})
    bom = json.loads(dated.stdout)
    assert bom["metadata"]["timestamp"] == "2026-01-01T00:00:00Z"
    assert validator().is_valid(bom)
    assert run(env={"SOURCE_DATE_EPOCH": "1767225600"}).stdout == dated.stdout
    bad = run(env={"SOURCE_DATE_EPOCH": "soon\x1b[2J"})
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "\x1b" not in bad.stderr


def test_out_writes_a_private_file_and_refuses_a_planted_link(tmp_path: Path) -> None:
    out = tmp_path / "sbom.json"
    done = run("--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_text()) == real_bom()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    refused = run("--out", str(link))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "symbolic link" in refused.stderr
    assert victim.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "sbom.json", "victim"]


def _hash(char: str) -> str:
    return f"--hash=sha256:{char * 64}"


def test_a_pin_not_installed_here_gets_no_licence_and_a_warning(tmp_path: Path) -> None:
    lock = tmp_path / "fake.lock"
    lock.write_text(
        f"textual==0.0.1 \\\n    {_hash('a')}\n    # via govtui (pyproject.toml)\n"
        f"no-such-package-here==1.0 \\\n    {_hash('b')}\n    # via textual\n"
    )
    done = run("--lock", str(lock))
    assert done.returncode == 0
    bom = json.loads(done.stdout)
    assert validator().is_valid(bom)
    assert all("licenses" not in c for c in bom["components"])
    assert done.stderr.splitlines() == [
        "warning: no-such-package-here 1.0 is not installed here: no licence recorded",
        "warning: textual: installed '8.2.8', the lock says 0.0.1: no licence recorded",
    ]
    assert run("--lock", str(lock), "--strict").returncode == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("textual>=8 \\\n    " + _hash("a") + "\n", "not a `name==version"),
        ("textual==8.2.8\n", "textual has no hash"),
        ("textual==8.2.8 --hash=md5:abc\n", "only sha256"),
        (f"a==1 {_hash('a')}\nA==2 {_hash('b')}\n", "a is pinned twice"),
        (f"-e . {_hash('a')}\n", "not a `name==version"),
        ("# only comments\n", "no pins"),
    ],
)
def test_a_bad_lock_is_one_line_exit_2(tmp_path: Path, text: str, says: str) -> None:
    lock = tmp_path / "bad.lock"
    lock.write_text(text)
    with pytest.raises(InputError, match=says.replace("`", ".")):
        lockfile.read(lock)
    done = run("--lock", str(lock))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and says in done.stderr


def test_lockfile_reads_markers_via_lists_and_the_build_pin() -> None:
    pins = lockfile.parse(
        f'# header\nZipp==4.1.2 ; python_version < "3.12" \\\n    {_hash("c")} \\\n'
        f"    {_hash('a')}\n    # via\n    #   importlib-metadata\n    #   keyring\n"
        f"setuptools==84.2.1 \\\n    {_hash('d')}\n    # via -r build pins (scripts/lock)\n"
    )
    zipp, setuptools = pins
    assert zipp.name == "zipp"
    assert zipp.marker == 'python_version < "3.12"'
    assert zipp.hashes == ("a" * 64, "c" * 64)
    assert zipp.via == ("importlib-metadata", "keyring")
    assert not zipp.build_only and setuptools.build_only


def test_licences_unit_cases() -> None:
    licences = script("sbom").licences
    ids = frozenset({"MIT", "BSD-3-Clause"})

    def meta(**fields: str | list[str]) -> Message:
        message = Message()
        for key, value in fields.items():
            for one in value if isinstance(value, list) else [value]:
                message[key.replace("_", "-")] = one
        return message

    assert licences(meta(License_Expression="MIT OR X"), ids) == [{"expression": "MIT OR X"}]
    assert licences(meta(License="BSD-3-Clause"), ids) == [{"license": {"id": "BSD-3-Clause"}}]
    # A licence's whole text in the License field is not a name: the classifiers decide.
    text = "Copyright (c) someone\n\nPermission is hereby granted..."
    classifiers = ["License :: OSI Approved :: MIT License", "License :: OSI Approved"]
    assert licences(meta(License=text, Classifier=classifiers), ids) == [{"license": {"id": "MIT"}}]
    assert licences(meta(Classifier=["License :: OSI Approved :: BSD License"]), ids) == [
        {"license": {"name": "BSD License"}}
    ]
    assert licences(meta(License="UNKNOWN"), ids) == []
    assert licences(meta(), ids) == []


def test_the_script_writes_where_the_caller_is(tmp_path: Path) -> None:
    # scripts/sbom itself (the bash wrapper): the dev venv here holds the lock, so it installs
    # nothing, and a relative --out is the caller's directory, not the checkout.
    done = subprocess.run(
        [str(ROOT / "scripts" / "sbom"), "--out", "bom.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "SBOM written: bom.json\n"
    assert json.loads((tmp_path / "bom.json").read_text()) == real_bom()
