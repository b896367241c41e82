"""scripts/lock_wheels.py, the wheels-only gate of scripts/lock: a pin with no wheel among the
lock's hashes for a supported Python is refused and named with the Pythons it lacks; pure,
abi3 and per-version wheels pass where pip would install them. Offline: pip reads a local
folder of tiny real wheels (--no-index --find-links), never an index."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.install_support import script

ROOT = Path(__file__).resolve().parent.parent


def wheel(folder: Path, name: str, tag: str) -> str:
    """A minimal valid wheel `name`-1.0 with `tag`; returns its SHA-256."""
    path = folder / f"{name}-1.0-{tag}.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n",
        f"{info}/RECORD": "",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(zipfile.ZipInfo(member, (2026, 1, 1, 0, 0, 0)), text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the folder the test gives: no machine pip configuration, find-links or index.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)


def _pin(name: str, *hashes: str) -> str:
    lines = [f"{name}==1.0 \\"] + [f"    --hash=sha256:{h} \\" for h in hashes]
    lines[-1] = lines[-1].removesuffix(" \\")
    return "\n".join([*lines, "    # via govtui (pyproject.toml)"]) + "\n"


@pytest.mark.usefixtures("offline_pip")
def test_pins_without_a_locked_wheel_are_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    lock = tmp_path / "requirements.lock"
    (links / "sdistonly-1.0.tar.gz").write_bytes(b"not built here")
    wheel(links, "unlocked", "py3-none-any")
    lock.write_text(
        _pin("pure", wheel(links, "pure", "py3-none-any"))
        + _pin("stable", wheel(links, "stable", "cp39-abi3-manylinux_2_17_x86_64"))
        + _pin(
            "versioned",
            wheel(links, "versioned", "cp311-cp311-manylinux_2_28_x86_64"),
            wheel(links, "versioned", "cp313-cp313-manylinux2014_x86_64"),
        )
        + _pin("oldonly", wheel(links, "oldonly", "cp311-cp311-manylinux_2_17_x86_64"))
        + _pin("newglibc", wheel(links, "newglibc", "py3-none-manylinux_2_39_x86_64"))
        + _pin("sdistonly", hashlib.sha256(b"not built here").hexdigest())
        + _pin("unlocked", "0" * 64)
    )
    rc = script("lock_wheels").main(
        [str(lock), "--python", "3.11", "--python", "3.13", "--", "--no-index",
         "--find-links", str(links)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == ""
    tail = " (only wheels are installed: scripts/lib/common.sh)"
    assert err.splitlines() == [
        f"refused: requirements.lock: oldonly 1.0: Python 3.13: no wheel{tail}",
        "refused: requirements.lock: newglibc 1.0: Python 3.11: no wheel, Python 3.13: no wheel"
        + tail,
        "refused: requirements.lock: sdistonly 1.0: Python 3.11: no wheel, Python 3.13: no wheel"
        + tail,
        "refused: requirements.lock: unlocked 1.0: Python 3.11: no wheel among the lock's hashes,"
        " Python 3.13: no wheel among the lock's hashes" + tail,
    ]


@pytest.mark.usefixtures("offline_pip")
def test_a_lock_of_wheels_for_every_python_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        _pin("pure", wheel(links, "pure", "py3-none-any"))
        + _pin("stable", wheel(links, "stable", "cp39-abi3-manylinux2014_x86_64"))
    )
    rc = script("lock_wheels").main([str(lock), "--", "--no-index", "--find-links", str(links)])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert out == (
        "ok: requirements.lock: all 2 pins have a locked wheel for Python 3.11, 3.12, 3.13"
        " (x86_64, glibc 2.36)\n"
    )


def test_platforms_are_every_manylinux_tag_the_glibc_runs() -> None:
    tags = script("lock_wheels").platforms("x86_64", "2.17")
    assert tags[0] == "manylinux_2_17_x86_64" and "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_18_x86_64" not in tags


def test_a_bad_lock_or_glibc_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "bad.lock"
    lock.write_text("textual>=8\n")
    assert script("lock_wheels").main([str(lock)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    lock.write_text(_pin("pure", "0" * 64))
    assert script("lock_wheels").main([str(lock), "--glibc", "3.1"]) == 2
    assert "--glibc 3.1" in capsys.readouterr().err


def _sdist(folder: Path, name: str, mark: Path) -> str:
    """A source distribution whose build backend (in the sdist, needing nothing from an
    index) writes `mark` as soon as pip runs it; returns its SHA-256."""
    path = folder / f"{name}-1.0.tar.gz"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
        'backend-path = ["."]\n',
        "backend.py": f"open({str(mark)!r}, 'w').write('ran')\n"
        "def get_requires_for_build_wheel(config_settings=None):\n    return []\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    }
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.usefixtures("offline_pip")
def test_the_scripts_install_a_lock_from_wheels_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/lib/common.sh's install_lock, the one install of a lock: a pin that only an
    sdist provides is refused before its build code runs; a locked wheel installs."""
    links = tmp_path / "links"
    links.mkdir()
    mark = tmp_path / "build code ran"
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

    def install(lock: Path) -> subprocess.CompletedProcess[str]:
        command = f'source {ROOT / "scripts/lib/common.sh"} && install_lock "$1" "$2"'
        return subprocess.run(
            ["bash", "-c", command, "install_lock", str(venv), str(lock)],
            capture_output=True,
            text=True,
        )

    sdist_only = tmp_path / "sdist.lock"
    sdist_only.write_text(_pin("evil", _sdist(links, "evil", mark)))
    refused = install(sdist_only)
    assert refused.returncode != 0
    assert not mark.exists(), "an sdist's build code ran"
    wheels = tmp_path / "wheels.lock"
    wheels.write_text(_pin("pure", wheel(links, "pure", "py3-none-any")))
    assert install(wheels).returncode == 0
    assert list(venv.glob("lib/python3*/site-packages/pure.py"))
