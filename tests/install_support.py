"""A throw-away copy of govtui's runtime environment, for the install checks' tampering tests
and scripts/bench_install: made offline, with no index and no wheel cache.

`python -m venv --without-pip` in a folder, then every file of every distribution that
requirements.lock names, of govtui itself and of the pip this Python bundles, copied from the
running environment by its RECORD: the layout pip made, the RECORDs pip wrote, and none of
the development tools (pytest, ruff, mypy) the running environment also holds. Also what the
tampering tests share: the `pristine` and `venv` fixtures (import them into the test module),
a minimal wheel and its offline install, a RECORD digest, the scripts (sbom, lock_wheels) as
modules."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from govtui import lockfile
from govtui.services.doctor_findings import Finding
from govtui.services.install_integrity import LOCK, site_dirs

ROOT = Path(__file__).resolve().parents[1]
SITE = Path("lib") / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
PINS = {p.name: p for p in lockfile.read(LOCK)}
# No pip configuration of the machine (find-links, extra indexes, constraints) and no index.
PIP_ENV = {
    **os.environ,
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_INDEX": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}


def _copy_distribution(dist: metadata.Distribution, venv: Path) -> None:
    site = (venv / SITE).resolve()
    files = dist.files
    assert files is not None, dist.metadata["Name"]
    for item in files:
        source = Path(item.locate())
        target = Path(os.path.normpath(site / item))
        assert target.is_relative_to(venv), target
        if not source.exists():
            continue  # a .pyc listed without hash that was never written
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def runtime_copy(venv: Path) -> Path:
    """Makes `venv` (which must not exist) hold the runtime environment; returns it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    venv = venv.resolve()
    wanted = {*PINS, "govtui", "pip"}
    copied = set()
    for dist in metadata.distributions(path=[str(p) for p in site_dirs()]):
        name = lockfile.normalise(dist.metadata["Name"])
        if name in wanted and name not in copied:
            _copy_distribution(dist, venv)
            copied.add(name)
    assert copied == wanted, f"not in the running environment: {sorted(wanted - copied)}"
    return venv


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime environment as scripts/run installs it: the lock's packages, pip, govtui."""
    return runtime_copy(tmp_path_factory.mktemp("pristine") / "venv")


@pytest.fixture
def venv(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine environment for one test to tamper with (hard links: fast)."""
    copy = tmp_path / "venv"
    shutil.copytree(pristine, copy, symlinks=True, copy_function=os.link)
    return copy


def site_of(venv: Path) -> Path:
    return (venv / SITE).resolve()


def not_ok(findings: list[Finding]) -> list[Finding]:
    """The findings that are not ok."""
    return [f for f in findings if f.status != "ok"]


def own_file(path: Path) -> None:
    """Break the hard link to the pristine copy, so changing `path` changes only this copy."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)


def record_digest(data: bytes) -> str:
    """A file's SHA-256 as a RECORD row writes it (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-Python wheel, as a build backend would write it."""
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    members = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = [
        f"{member},sha256={record_digest(text.encode())},{len(text.encode())}"
        for member, text in members.items()
    ]
    record.append(f"{dist_info}/RECORD,,")
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def pip_install(venv: Path, wheel: Path) -> None:
    """`wheel` into `venv` by its own pip, offline."""
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "-qq", "install", "--no-deps", str(wheel)],
        check=True,
        env=PIP_ENV,
        cwd=wheel.parent,
    )


@cache
def script(name: str) -> ModuleType:
    """scripts/NAME.py as a module (the scripts are run, not imported from govtui)."""
    spec = importlib.util.spec_from_file_location(
        f"govtui_script_{name}", ROOT / "scripts" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
