"""`govtui doctor`'s install checks against real tampering, in throw-away environments.

A pristine runtime environment is made once per module, offline (tests/install_support.py:
a venv with what requirements.lock names, pip and govtui, copied from the running environment
by their RECORDs). Each test tampers with a hard-linked copy of it (a file it
changes is first made a file of its own) and runs the check on that copy. Packages are
"installed" into it by its own pip from wheels the test builds with zipfile, with no index
and no configuration of the machine: one the lock does not name, and an older rich."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from govtui import lockfile
from govtui.services import install_integrity
from govtui.services.doctor_findings import Finding, failed
from govtui.services.install_integrity import LOCK, check_install
from tests import install_support
from tests.install_support import (
    PINS,
    make_wheel,
    not_ok,
    own_file,
    pip_install,
    site_of,
)

ROOT = Path(__file__).resolve().parents[1]
# The tampering fixtures, shared with the other install tests (bound here for pytest to find).
pristine = install_support.pristine
venv = install_support.venv


def _installed_govtui() -> metadata.Distribution:
    dists = [
        d
        for d in metadata.distributions(path=[str(p) for p in install_integrity.site_dirs()])
        if lockfile.normalise(d.metadata["Name"]) == "govtui"
    ]
    assert len(dists) == 1, "govtui is not installed in .venv: run scripts/test (ensure_venv)"
    return dists[0]


def _check(venv: Path) -> list[Finding]:
    return check_install(dirs=[site_of(venv)])


def test_an_untouched_install_passes_run_by_its_own_python(venv: Path, tmp_path: Path) -> None:
    # The environment's own interpreter, from a folder outside the checkout: the installed
    # govtui finds its site-packages and its lock (package data) by itself.
    code = (
        "import json, govtui.services.install_integrity as m\n"
        "print(json.dumps({'module': m.__file__, 'lock': str(m.LOCK), 'findings': "
        "[f.__dict__ for f in m.check_install()]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert Path(report["module"]).is_relative_to(site_of(venv))
    assert Path(report["lock"]).read_bytes() == (ROOT / "requirements.lock").read_bytes()
    findings = [Finding(**f) for f in report["findings"]]
    assert not_ok(findings) == [], findings
    assert {f.check for f in findings} == {"packages", "files", "strays"}
    packages = next(f for f in findings if f.check == "packages")
    assert packages.detail == f"{len(PINS)} distributions installed at their locked versions"


def test_one_byte_changed_in_a_textual_file_is_named(venv: Path) -> None:
    target = site_of(venv) / "textual" / "widget.py"
    own_file(target)
    with target.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(b"X" if byte != b"X" else b"Y")
    findings = _check(venv)
    assert failed(findings)
    assert not_ok(findings) == [
        Finding(
            "files",
            "fail",
            "textual/widget.py",
            f"textual {PINS['textual'].version}: content differs from RECORD (sha256)",
        )
    ]


def test_a_stray_pth_file_is_named(venv: Path) -> None:
    (site_of(venv) / "zz_startup.pth").write_text("import os; os.environ['POISONED'] = '1'\n")
    findings = _check(venv)
    assert failed(findings)
    assert not_ok(findings) == [
        Finding(
            "strays",
            "fail",
            "zz_startup.pth",
            "a .pth file no RECORD lists: Python runs its import lines at every start-up",
        )
    ]


def test_an_unlocked_package_installed_is_named_as_a_warning(venv: Path, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "left-pad", "1.0", {"left_pad.py": "def pad(s):\n    return s\n"})
    pip_install(venv, wheel)
    findings = _check(venv)
    # Extras are a warning, not a failure; the files pip installed match their new RECORD.
    assert not failed(findings)
    assert not_ok(findings) == [
        Finding("packages", "warn", "left-pad", "installed 1.0, not in requirements.lock")
    ]


def test_a_downgraded_package_is_named(venv: Path, tmp_path: Path) -> None:
    # pip uninstalls the locked rich and installs an older one, as `pip install rich==13.9.4`.
    wheel = make_wheel(tmp_path, "rich", "13.9.4", {"rich/__init__.py": "OLD = True\n"})
    pip_install(venv, wheel)
    findings = _check(venv)
    assert failed(findings)
    assert not_ok(findings) == [
        Finding(
            "packages",
            "fail",
            "rich",
            f"installed 13.9.4, requirements.lock pins {PINS['rich'].version}",
        )
    ]


def test_a_missing_locked_package_and_a_missing_file_are_named(venv: Path) -> None:
    # keyring loads this backport on Python 3.11; it adds a finder to sys.meta_path whose
    # Distribution.files leaves out missing files. The check must not go through it.
    import importlib_metadata  # noqa: F401

    site = site_of(venv)
    # What `pip uninstall pyotp` leaves: neither its files nor its RECORD.
    shutil.rmtree(next(site.glob("pyotp-*.dist-info")))
    shutil.rmtree(site / "pyotp")
    (site / "segno" / "writers.py").unlink()
    bad = not_ok(_check(venv))
    assert (
        Finding(
            "packages",
            "fail",
            "pyotp",
            f"requirements.lock pins {PINS['pyotp'].version}, not installed",
        )
        in bad
    )
    assert (
        Finding("files", "fail", "segno/writers.py", f"segno {PINS['segno'].version}: missing")
        in bad
    )


def test_a_file_grown_by_a_byte_and_a_symlinked_file_are_named(venv: Path) -> None:
    site = site_of(venv)
    grown = site / "ldap3" / "__init__.py"
    own_file(grown)
    with grown.open("ab") as handle:
        handle.write(b"\n")
    size = grown.stat().st_size
    linked = site / "pyotp" / "totp.py"
    linked.unlink()
    linked.symlink_to(site / "pyotp" / "hotp.py")
    bad = not_ok(_check(venv))
    assert (
        Finding(
            "files",
            "fail",
            "ldap3/__init__.py",
            f"ldap3 2.9.1: {size} bytes, RECORD says {size - 1}",
        )
        in bad
    )
    assert (
        Finding(
            "files",
            "fail",
            "pyotp/totp.py",
            f"pyotp {PINS['pyotp'].version}: a symbolic link, not the file RECORD lists",
        )
        in bad
    )


def test_a_package_installed_twice_is_named(venv: Path) -> None:
    site = site_of(venv)
    old = site / "pyotp-2.11.0.dist-info"
    shutil.copytree(next(site.glob("pyotp-*.dist-info")), old)
    metadata_file = old / "METADATA"
    metadata_file.write_text(
        metadata_file.read_text().replace("Version: 2.12.0", "Version: 2.11.0")
    )
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [("packages", "fail", "pyotp")]
    assert bad[0].detail == (
        "installed more than once: 2.11.0 (pyotp-2.11.0.dist-info), 2.12.0 (pyotp-2.12.0.dist-info)"
    )


def test_an_editable_govtui_fails(venv: Path) -> None:
    # What `pip install -e` leaves: a RECORD naming a path hook, none of govtui's files.
    dist_info = next(site_of(venv).glob("govtui-*.dist-info"))
    direct_url = dist_info / "direct_url.json"
    direct_url.unlink()
    direct_url.write_text('{"dir_info": {"editable": true}, "url": "file:///src/govtui"}')
    bad = not_ok(_check(venv))
    assert (
        Finding(
            "files",
            "fail",
            "govtui",
            "installed editable: its RECORD lists no files of govtui, so they cannot be checked "
            "(install it as scripts/run does)",
        )
        in bad
    )


def test_a_change_to_govtui_itself_is_named(venv: Path) -> None:
    target = site_of(venv) / "govtui" / "services" / "grants.py"
    own_file(target)
    target.write_text(target.read_text().replace("def ", "def  ", 1))
    bad = not_ok(_check(venv))
    assert [(f.check, f.subject) for f in bad] == [("files", "govtui/services/grants.py")]


def test_the_lock_shipped_with_govtui_is_checked_like_its_other_files(venv: Path) -> None:
    # Adding a pin for the attacker's package to the lock is itself a changed file of govtui.
    lock = site_of(venv) / "govtui" / "requirements.lock"
    own_file(lock)
    with lock.open("a") as handle:
        handle.write("left-pad==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    bad = not_ok(check_install(dirs=[site_of(venv)], lock=lock))
    assert [(f.check, f.subject) for f in bad] == [
        ("packages", "left-pad"),  # pinned, not installed
        ("files", "govtui/requirements.lock"),
    ]


def test_stray_modules_and_hostile_names_are_named_escaped(venv: Path) -> None:
    site = site_of(venv)
    (site / "sitecustomize.py").write_text("print('hello')\n")
    (site / "textual" / "_extra.py").write_text("")
    (site / "evil\x1b[2J.pth").write_text("")
    (site / "README.txt").write_text("not runnable: not a stray")
    (site / "textual" / "__pycache__" / "cached.cpython-311.pyc").write_bytes(b"")
    bad = not_ok(_check(venv))
    assert [(f.check, f.subject) for f in bad] == [
        ("strays", "evil\\x1b[2J.pth"),
        ("strays", "sitecustomize.py"),
        ("strays", "textual/_extra.py"),
    ]


def test_the_lock_is_read_with_its_markers() -> None:
    text = (
        "#\n# comment\n#\n"
        "Jaraco.Classes==3.4.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via keyring\n"
        'zipp==4.1.2 ; python_version < "3.12" \\\n    --hash=sha256:' + "b" * 64 + "\n"
    )
    pins = {p.name: p for p in lockfile.parse(text)}
    assert {n: (p.version, p.marker) for n, p in pins.items()} == {
        "jaraco-classes": ("3.4.0", None),
        "zipp": ("4.1.2", 'python_version < "3.12"'),
    }
    assert len(PINS) == 35 and PINS["textual"].version == "8.2.8"


def test_a_package_behind_a_marker_may_be_absent(venv: Path, tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    pin = 'tomli==2.0.0 ; python_version < "3.11" \\\n    --hash=sha256:' + "1" * 64 + "\n"
    lock.write_text(LOCK.read_text() + pin)
    assert not_ok(check_install(dirs=[site_of(venv)], lock=lock)) == []


def test_an_unreadable_lock_is_one_failing_line(venv: Path, tmp_path: Path) -> None:
    (finding,) = check_install(dirs=[site_of(venv)], lock=tmp_path / "absent.lock")
    assert finding.status == "fail" and "cannot read the lock file" in finding.detail


def test_the_installed_govtui_is_this_checkout() -> None:
    # Tests import the checkout; subprocesses and tmux run the installed copy. ensure_venv
    # reinstalls govtui whenever its tree changes; this fails when the two differ anyway (a
    # bare `pytest` after an edit, before scripts/test reinstalled it).
    dist = _installed_govtui()
    assert not install_integrity._editable(dist), "govtui is installed editable"
    files = dist.files
    assert files is not None
    recorded = {str(f): f for f in files if str(f).startswith("govtui/")}
    checkout = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "govtui").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert checkout == {n for n in recorded if "__pycache__" not in n}, (
        "the installed govtui's files are not the checkout's: run scripts/test to reinstall"
    )
    for name in sorted(checkout):
        item = recorded[name]
        assert item.hash is not None
        digest = hashlib.sha256((ROOT / name).read_bytes()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == item.hash.value, (
            f"{name} differs from its installed copy: run scripts/test to reinstall"
        )
