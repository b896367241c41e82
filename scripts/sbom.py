#!/usr/bin/env python3
"""The body of scripts/sbom (run that: it sets up the environment).

Writes a CycloneDX 1.5 JSON SBOM of a lock file (default requirements.lock): one component
per pin with its name, version, purl (pkg:pypi/name@version), the SHA-256 hashes the lock
accepts (one per distribution file on the index: any of them is what pip may install) and
the licence where the installed package's metadata says (License-Expression, else License,
else the licence classifiers); the dependency graph is the lock's own `# via` comments.
govtui is the BOM's subject (metadata.component); the build-only setuptools is listed with
scope "excluded". Standard library only, and offline: it reads the lock, the installed
metadata of the Python running it, and the vendored SPDX id list.

The output is deterministic: the same lock and the same installed metadata give the same
bytes. The serial number is derived from the content, and there is no timestamp unless
SOURCE_DATE_EPOCH is set (reproducible-builds.org's convention). `--out FILE` writes a
private file (0600, atomically, never through a planted link); without it, stdout.
A package whose installed version is not the locked one (or that is not installed) gets no
licence, and one line on stderr says so; `--strict` makes that exit 1."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import tomllib
import uuid
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from govtui import lockfile  # noqa: E402
from govtui.errors import InputError  # noqa: E402
from govtui.private_files import write_private  # noqa: E402
from govtui.text import escaped, quoted  # noqa: E402

SPEC_VERSION = "1.5"
SPDX_SCHEMA = ROOT / "schemas" / "cyclonedx" / "spdx.schema.json"
# Licence classifiers that name exactly one SPDX licence. Others ("BSD License", "Apache
# Software License", "GNU Lesser General Public License v3 (LGPLv3)") leave the version or
# the "-only/-or-later" choice open, so they are kept as names rather than guessed into ids.
CLASSIFIER_IDS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Zero-Clause BSD (0BSD)": "0BSD",
}
# A License field longer than this, or of several lines, is a licence's text pasted into the
# metadata (old setup.py habit), not its name.
_NAME_LIMIT = 100


def spdx_ids(path: Path = SPDX_SCHEMA) -> frozenset[str]:
    try:
        return frozenset(json.loads(path.read_text(encoding="utf-8"))["enum"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the SPDX licence list {path}: {exc}") from None


def purl(name: str, version: str) -> str:
    # purl-spec's pypi type: the name lower case with "_" as "-" (PEP 503's form); versions
    # of a lock are PEP 440 and need no escaping beyond "+" (a local version).
    return f"pkg:pypi/{lockfile.normalise(name)}@{version.replace('+', '%2B')}"


def licences(meta: Message, ids: frozenset[str]) -> list[dict[str, Any]]:
    """CycloneDX licence choices from a distribution's metadata; [] when it says nothing."""
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [{"expression": expression}]
    found: list[dict[str, Any]] = []
    field = (meta.get("License") or "").strip()
    if field and "\n" not in field and len(field) <= _NAME_LIMIT and field.upper() != "UNKNOWN":
        found.append({"license": {"id": field} if field in ids else {"name": field}})
    else:
        for classifier in meta.get_all("Classifier") or []:
            parts = [p.strip() for p in classifier.split("::")]
            if parts[0] != "License" or len(parts) < 2 or parts[-1] == "OSI Approved":
                continue
            spdx = CLASSIFIER_IDS.get(parts[-1])
            entry = {"id": spdx} if spdx else {"name": parts[-1]}
            if {"license": entry} not in found:
                found.append({"license": entry})
    return found


def _installed(pin: lockfile.Pin) -> tuple[Message | None, str | None]:
    """The installed metadata of `pin` when the installed version is the locked one, else
    (None, why)."""
    try:
        dist = importlib.metadata.distribution(pin.name)
    except importlib.metadata.PackageNotFoundError:
        return None, f"{pin.name} {pin.version} is not installed here: no licence recorded"
    if dist.version != pin.version:
        return None, (
            f"{pin.name}: installed {quoted(dist.version, 40)}, the lock says {pin.version}:"
            " no licence recorded"
        )
    return dist.metadata, None  # type: ignore[return-value]


def build(lock: Path, *, warn: list[str]) -> dict[str, Any]:
    """The SBOM of `lock` as a JSON-ready dict; problems short of failure go to `warn`."""
    pins = lockfile.read(lock)
    ids = spdx_ids()
    runtime = {p.name for p in lockfile.runtime_closure(pins)}
    subject = _subject(ids)
    subject_ref = subject["bom-ref"]

    components = []
    graph: dict[str, set[str]] = {subject_ref: set()}
    refs = {p.name: purl(p.name, p.version) for p in pins}
    for pin in sorted(pins, key=lambda p: p.name):
        ref = refs[pin.name]
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": pin.name,
            "version": pin.version,
            "scope": "required" if pin.name in runtime else "excluded",
            "hashes": [{"alg": "SHA-256", "content": h} for h in pin.hashes],
        }
        meta, why = _installed(pin)
        if why:
            warn.append(why)
        found = licences(meta, ids) if meta is not None else []
        if found:
            component["licenses"] = found
        component["purl"] = ref
        properties = [{"name": "govtui:lock:via", "value": v} for v in pin.via]
        if pin.marker:
            properties.append({"name": "govtui:lock:marker", "value": pin.marker})
        if properties:
            component["properties"] = properties
        components.append(component)
        graph.setdefault(ref, set())
        for via in pin.via:
            if via == lockfile.PROJECT_VIA:
                graph[subject_ref].add(ref)
            elif lockfile.normalise(via) in refs:
                graph.setdefault(refs[lockfile.normalise(via)], set()).add(ref)

    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    metadata: dict[str, Any] = {}
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            when = datetime.fromtimestamp(int(epoch), UTC)
        except (ValueError, OverflowError, OSError):
            raise InputError(f"SOURCE_DATE_EPOCH {quoted(epoch)} is not a Unix time") from None
        metadata["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata["tools"] = {
        "components": [
            {"type": "application", "name": "govtui scripts/sbom", "version": subject["version"]}
        ]
    }
    metadata["component"] = subject
    metadata["properties"] = [
        {"name": "govtui:lock:file", "value": lock.name},
        {"name": "govtui:lock:sha256", "value": digest},
        {"name": "govtui:runtime-closure:count", "value": str(len(runtime))},
    ]
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": "",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [
            {"ref": ref, "dependsOn": sorted(children)} for ref, children in sorted(graph.items())
        ],
    }
    # A serial number from the content itself: the same BOM always has the same one, and a
    # different BOM (another lock, another licence read) a different one.
    content = json.dumps(bom, sort_keys=True).encode()
    bom["serialNumber"] = uuid.uuid5(
        uuid.NAMESPACE_URL, "govtui-sbom:" + hashlib.sha256(content).hexdigest()
    ).urn
    return bom


def _subject(ids: frozenset[str]) -> dict[str, Any]:
    """govtui itself, from pyproject.toml's [project] table."""
    try:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read {ROOT / 'pyproject.toml'}: {exc}") from None
    version = str(project["version"])
    subject: dict[str, Any] = {
        "type": "application",
        "bom-ref": f"govtui@{version}",
        "name": "govtui",
        "version": version,
        "description": str(project.get("description", "")),
    }
    declared = project.get("license")
    text = declared.get("text") if isinstance(declared, dict) else None
    if isinstance(text, str) and text:
        subject["licenses"] = [{"license": {"id": text} if text in ids else {"name": text}}]
    return subject


def render(bom: dict[str, Any]) -> str:
    # ASCII only: a licence name with escape or bidi characters is shown as \u escapes, so
    # printing the SBOM to a terminal cannot act on it.
    return json.dumps(bom, indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/sbom", description="Write a CycloneDX 1.5 JSON SBOM of a lock file."
    )
    parser.add_argument(
        "--lock", type=Path, default=ROOT / "requirements.lock", help="default: requirements.lock"
    )
    parser.add_argument("--out", type=Path, help="write this file (0600) instead of stdout")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a licence could not be read"
    )
    args = parser.parse_args(argv)
    warn: list[str] = []
    try:
        text = render(build(args.lock, warn=warn))
        if args.out is not None:
            write_private(args.out, text, "SBOM")
        else:
            sys.stdout.write(text)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in warn:
        print(f"warning: {line}", file=sys.stderr)
    if args.out is not None:
        print(f"SBOM written: {escaped(args.out)}", file=sys.stderr)
    return 1 if warn and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
