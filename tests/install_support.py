"""A throw-away copy of govtui's runtime environment, for the install checks' tampering tests
and scripts/bench_install: made offline, with no index and no wheel cache.

`python -m venv --without-pip` in a folder, then every file of every distribution that
requirements.lock names, of govtui itself and of the pip this Python bundles, copied from the
running environment by its RECORD: the layout pip made, the RECORDs pip wrote, and none of
the development tools (pytest, ruff, mypy) the running environment also holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from govtui import lockfile
from govtui.services.install_integrity import LOCK, site_dirs

SITE = Path("lib") / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


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
    wanted = {*{p.name: p for p in lockfile.read(LOCK)}, "govtui", "pip"}
    copied = set()
    for dist in metadata.distributions(path=[str(p) for p in site_dirs()]):
        name = lockfile.normalise(dist.metadata["Name"])
        if name in wanted and name not in copied:
            _copy_distribution(dist, venv)
            copied.add(name)
    assert copied == wanted, f"not in the running environment: {sorted(wanted - copied)}"
    return venv
