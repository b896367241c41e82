"""Issue 15 attacked: what a colleague at the same keyboard, or a poisoned package running as
the user, would try against `govtui doctor`'s install checks, the lock reader, scripts/sbom and
scripts/lock_wheels.py. Each test names the attack; the ones marked xfail(strict) are known
limits that are still open (they fail today, and pass the day someone closes them)."""

from __future__ import annotations

import email.message
import importlib.util
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from govtui import lockfile
from govtui.cli.doctor_commands import finding_line
from govtui.errors import InputError
from govtui.services import doctor
from govtui.services.doctor_findings import Finding, failed
from govtui.services.install_integrity import check_install
from govtui.text import hostile_char
from govtui.tui.doctor_line import doctor_text
from tests import install_support
from tests.install_support import (
    make_wheel,
    not_ok,
    own_file,
    pip_install,
    record_digest,
    script,
    site_of,
)

ROOT = Path(__file__).resolve().parents[1]
# The tampering fixtures, shared with the other install tests (bound here for pytest to find).
pristine = install_support.pristine
venv = install_support.venv
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _check(venv: Path, **kwargs: Any) -> list[Finding]:
    return check_install(dirs=[site_of(venv)], scripts=venv / "bin", **kwargs)


def _record_of(venv: Path, name: str) -> Path:
    (record,) = site_of(venv).glob(f"{name}-*.dist-info/RECORD")
    own_file(record)
    return record


def _runs_at_startup(venv: Path, tmp_path: Path) -> str:
    """What the environment's own Python prints on start-up with an empty program."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "pass"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _within(seconds: float, fn: Callable[[], list[Finding]]) -> list[Finding]:
    """fn() in a daemon thread; fails (rather than hanging the suite) if it takes longer."""
    out: list[list[Finding]] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    assert out, "raised"
    return out[0]


# --- .pth files: stray, hidden, and listed --------------------------------------------------------


def test_a_pth_file_named_only_dot_pth_runs_and_is_named(venv: Path, tmp_path: Path) -> None:
    # os.path.splitext(".pth") is (".pth", ""): no suffix; Python 3.11's site runs it anyway.
    (site_of(venv) / ".pth").write_text("import sys; print('POISONED')\n")
    assert "POISONED" in _runs_at_startup(venv, tmp_path)
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [("strays", "fail", ".pth")]


def test_a_hashless_record_line_does_not_hide_a_stray_pth(venv: Path, tmp_path: Path) -> None:
    # pip writes only RECORD itself and __pycache__/*.pyc without a hash; a line `evil.pth,,`
    # added to any RECORD must not make a stray .pth "listed".
    (site_of(venv) / "zz_evil.pth").write_text("import sys; print('POISONED')\n")
    record = _record_of(venv, "pyotp")
    with record.open("a") as handle:
        handle.write("zz_evil.pth,,\n")
    assert "POISONED" in _runs_at_startup(venv, tmp_path)
    bad = not_ok(_check(venv))
    assert ("files", "fail", "zz_evil.pth") in [(f.check, f.status, f.subject) for f in bad]
    assert ("strays", "fail", "zz_evil.pth") in [(f.check, f.status, f.subject) for f in bad]


def test_a_pth_that_a_locked_packages_record_lists_and_that_runs_code_is_named(
    venv: Path, tmp_path: Path
) -> None:
    # A poisoned release of a locked package (what the lock's hash pinned) ships a start-up
    # hook; its RECORD lists it with the right hash. It runs at every start of Python.
    data = b"import sys; print('POISONED')\n"
    (site_of(venv) / "rich-init.pth").write_bytes(data)
    record = _record_of(venv, "rich")
    with record.open("a") as handle:
        handle.write(f"rich-init.pth,sha256={record_digest(data)},{len(data)}\n")
    assert "POISONED" in _runs_at_startup(venv, tmp_path)
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [("startup", "fail", "rich-init.pth")]
    assert "rich" in bad[0].detail and "import" in bad[0].detail


def test_a_listed_pth_that_adds_a_folder_to_the_import_path_is_named(
    venv: Path, tmp_path: Path
) -> None:
    # A path line puts a folder no RECORD covers on sys.path: a second, unchecked site.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keyring.py").write_text("print('POISONED')\n")
    data = f"{elsewhere}\n".encode()
    (site_of(venv) / "rich-path.pth").write_bytes(data)
    record = _record_of(venv, "rich")
    with record.open("a") as handle:
        handle.write(f"rich-path.pth,sha256={record_digest(data)},{len(data)}\n")
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [("startup", "fail", "rich-path.pth")]
    assert str(elsewhere) in bad[0].detail


def test_a_sitecustomize_that_a_locked_packages_record_lists_is_named(
    venv: Path, tmp_path: Path
) -> None:
    data = b"print('POISONED')\n"
    (site_of(venv) / "sitecustomize.py").write_bytes(data)
    record = _record_of(venv, "rich")
    with record.open("a") as handle:
        handle.write(f"sitecustomize.py,sha256={record_digest(data)},{len(data)}\n")
    assert "POISONED" in _runs_at_startup(venv, tmp_path)
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [
        ("startup", "fail", "sitecustomize.py")
    ]


def test_a_listed_pth_naming_a_folder_inside_site_packages_is_not_named(venv: Path) -> None:
    # That folder's files are walked by the strays check already (pywin32-style .pth files).
    data = b"rich\n"
    (site_of(venv) / "rich-path.pth").write_bytes(data)
    record = _record_of(venv, "rich")
    with record.open("a") as handle:
        handle.write(f"rich-path.pth,sha256={record_digest(data)},{len(data)}\n")
    assert not_ok(_check(venv)) == []


def test_setuptools_own_pth_is_not_named(venv: Path) -> None:
    # The one start-up hook the runtime lock ships (distutils-precedence.pth) is expected.
    assert (site_of(venv) / "distutils-precedence.pth").exists()
    assert not_ok(_check(venv)) == []


def test_a_stray_pth_in_a_subfolder_or_with_unicode_in_its_name_is_named(venv: Path) -> None:
    site = site_of(venv)
    (site / "textual" / "deep.pth").write_text("import os\n")
    (site / "evil\u202ehtp.pth").write_text("import os\n")
    subjects = {f.subject for f in not_ok(_check(venv))}
    assert subjects == {"textual/deep.pth", "evil\\u202ehtp.pth"}


def test_an_unlocked_package_that_plugs_into_keyring_fails_not_warns(
    venv: Path, tmp_path: Path
) -> None:
    # keyring imports every `keyring.backends` entry point when it picks a backend: a package
    # the lock does not name runs its code in every govtui command, not just sits there.
    wheel = make_wheel(
        tmp_path,
        "left-pad",
        "1.0",
        {
            "left_pad.py": "def init():\n    print('POISONED')\n",
            "left_pad-1.0.dist-info/entry_points.txt": "[keyring.backends]\nx = left_pad:init\n",
        },
    )
    pip_install(venv, wheel)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import keyring; keyring.get_keyring()"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "POISONED" in done.stdout
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [("packages", "fail", "left-pad")]
    assert "keyring.backends" in bad[0].detail


# --- the folders Python imports from, beyond site-packages ----------------------------------------


def test_a_module_beside_the_govtui_script_shadows_a_package_and_is_named(venv: Path) -> None:
    # `.venv/bin/govtui` runs with .venv/bin first on sys.path: bin/keyring.py replaces keyring.
    (venv / "bin" / "keyring.py").write_text("print('POISONED')\n")
    bad = not_ok(_check(venv))
    assert [(f.check, f.status, f.subject) for f in bad] == [("strays", "fail", "bin/keyring.py")]


def test_a_folder_on_the_import_path_that_no_check_covers_is_named(
    venv: Path, tmp_path: Path
) -> None:
    # PYTHONPATH (or include-system-site-packages, or a user site) adds folders whose files no
    # RECORD covers; the environment's own Python, checking itself, must say so.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import json, govtui.services.install_integrity as m\n"
        "print(json.dumps([f.__dict__ for f in m.check_install()]))\n"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(elsewhere)},
        capture_output=True,
        text=True,
        check=True,
    )
    bad = not_ok([Finding(**f) for f in json.loads(done.stdout)])
    assert ("path", "fail", str(elsewhere)) in [(f.check, f.status, f.subject) for f in bad]


# --- RECORD and the lock as hostile files ---------------------------------------------------------


def test_a_record_that_is_a_fifo_or_a_link_to_dev_zero_does_not_hang_the_check(
    venv: Path,
) -> None:
    # The TUI runs this at every start; `cat RECORD` of a FIFO waits forever, /dev/zero never
    # ends. Each is one failed line, at once.
    fifo = _record_of(venv, "pyotp")
    fifo.unlink()
    os.mkfifo(fifo)
    zero = _record_of(venv, "segno")
    zero.unlink()
    zero.symlink_to("/dev/zero")
    bad = _within(30, lambda: _check(venv))
    files = [f for f in bad if f.check == "files"]
    assert {f.subject.split("-")[0] for f in files if "RECORD" in f.detail} >= {"pyotp", "segno"}


def test_a_metadata_file_that_is_a_fifo_does_not_hang_the_check(venv: Path) -> None:
    (metadata_file,) = site_of(venv).glob("pyotp-*.dist-info/METADATA")
    metadata_file.unlink()
    os.mkfifo(metadata_file)
    bad = _within(30, lambda: _check(venv))
    assert failed(bad)


def test_a_huge_record_and_a_file_of_gigabytes_are_named_without_reading_them(
    venv: Path,
) -> None:
    # Sparse files: a 40 MB RECORD is refused unread, a 4 GB file instead of a recorded one is
    # named by its size before a byte of it is hashed.
    record = _record_of(venv, "pyotp")
    with record.open("r+b") as handle:
        handle.truncate(40 << 20)
    big = site_of(venv) / "segno" / "writers.py"
    big.unlink()
    with big.open("wb") as handle:
        handle.truncate(4 << 30)
    bad = _within(10, lambda: _check(venv))
    details = {f.subject: f.detail for f in bad if f.check == "files"}
    assert "more than a metadata file holds" in details[record.parent.name]
    assert f"{4 << 30} bytes, RECORD says" in details["segno/writers.py"]


def test_a_package_folder_replaced_by_a_link_to_a_copy_elsewhere_is_named(
    venv: Path, tmp_path: Path
) -> None:
    # Every file still matches RECORD through the link; the copy is the attacker's to change.
    site = site_of(venv)
    copy = tmp_path / "pyotp-copy"
    shutil.copytree(site / "pyotp", copy)
    shutil.rmtree(site / "pyotp")
    (site / "pyotp").symlink_to(copy)
    bad = not_ok(_check(venv))
    assert [(f.check, f.subject, f.detail) for f in bad] == [
        ("strays", "pyotp", "a symbolic link no RECORD lists")
    ]


def test_a_lock_that_is_a_fifo_is_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "requirements.lock"
    os.mkfifo(fifo)

    def read() -> list[Finding]:
        with pytest.raises(InputError, match="not a regular file"):
            lockfile.read(fifo)
        return []

    _within(10, read)


def test_a_record_line_escaping_the_environment_is_named(venv: Path) -> None:
    # A RECORD may list ../../../bin/x (pip's scripts), not a file outside the environment:
    # the check would read it, and a row for it would list it as the package's own.
    record = _record_of(venv, "pyotp")
    with record.open("a") as handle:
        handle.write("../../../../../../../../etc/hostname,sha256=AAAA,1\n")
    bad = not_ok(_check(venv))
    assert [(f.check, f.status) for f in bad] == [("files", "fail")]
    assert "outside the environment" in bad[0].detail


def test_a_distribution_whose_dist_info_is_removed_leaves_its_files_as_strays(
    venv: Path,
) -> None:
    shutil.rmtree(next(site_of(venv).glob("pyotp-*.dist-info")))
    bad = not_ok(_check(venv))
    assert ("packages", "pyotp") in [(f.check, f.subject) for f in bad]
    assert ("strays", "pyotp/__init__.py") in [(f.check, f.subject) for f in bad]


@pytest.mark.xfail(strict=True, reason="known limit: a file changed with its RECORD line")
def test_a_file_changed_together_with_its_record_line_is_named(venv: Path) -> None:
    # Needs a digest kept outside site-packages at install time (see the report of issue 15).
    target = site_of(venv) / "pyotp" / "totp.py"
    own_file(target)
    data = target.read_bytes() + b"\nPOISONED = True\n"
    target.write_bytes(data)
    record = _record_of(venv, "pyotp")
    rows = record.read_text().splitlines()
    rows = [
        f"pyotp/totp.py,sha256={record_digest(data)},{len(data)}"
        if r.startswith("pyotp/totp.py,")
        else r
        for r in rows
    ]
    record.write_text("\n".join(rows) + "\n")
    assert failed(_check(venv))


@pytest.mark.xfail(strict=True, reason="known limit: __pycache__/*.pyc carry no hash in RECORD")
def test_a_forged_pyc_with_the_sources_mtime_and_size_is_named(venv: Path, tmp_path: Path) -> None:
    # Python runs a timestamp .pyc whose header matches the source's mtime and size, without
    # reading the source: the .py file still matches RECORD, and what runs is the attacker's.
    from importlib._bootstrap_external import _code_to_timestamp_pyc  # type: ignore[attr-defined]

    source = site_of(venv) / "pyotp" / "__init__.py"
    cached = Path(importlib.util.cache_from_source(str(source)))
    info = source.stat()
    code = compile("print('POISONED')\n", str(source), "exec")
    cached.unlink(missing_ok=True)
    cached.write_bytes(_code_to_timestamp_pyc(code, int(info.st_mtime), info.st_size))
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pyotp"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "POISONED\n"
    assert failed(_check(venv))


# --- hostile names reaching the CLI, --json and the TUI line --------------------------------------


def test_escape_codes_and_markup_in_a_package_name_version_and_file_reach_no_output(
    venv: Path,
) -> None:
    site = site_of(venv)
    dist_info = site / "evil-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: evil\x1b]0;owned\x07[bold red]x\nVersion: 1.0\x1b[2J\n"
    )
    (dist_info / "RECORD").write_text(
        "evil\x1b[31m[/].py,sha256=AAAA,3\nevil-1.0.dist-info/RECORD,,\n"
    )
    findings = not_ok(_check(venv))
    assert len(findings) >= 2
    for f in findings:
        assert hostile_char(f.subject) is None and hostile_char(f.detail) is None, f
        assert hostile_char(finding_line(f)) is None
    shown = doctor_text(doctor.Report(findings, 0.5)).plain
    assert hostile_char(shown) is None
    assert "[/]" in shown or "[bold red]" in shown  # markup shown as text, not applied


# --- scripts/sbom with hostile metadata, scripts/lock_wheels.py with hostile arguments ------------


@pytest.mark.parametrize(
    "fields",
    [
        {"License-Expression": "MIT\x1b[2J AND \u202eevil\x00"},
        {"License": "Evil\x07Licence [bold]"},
        {"License": "x" * 5000, "Classifier": "License :: \x1b]0;t\x07 :: Odd\x9b"},
    ],
)
def test_an_sbom_of_hostile_licence_metadata_is_still_valid_cyclonedx_and_ascii(
    fields: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_sbom import validator

    sbom = script("sbom")
    meta = email.message.Message()
    for key, value in fields.items():
        meta[key] = value
    monkeypatch.setattr(sbom, "_installed", lambda pin: (meta, None))
    bom = sbom.build(ROOT / "requirements.lock", warn=[])
    text = sbom.render(bom)
    assert text.isascii() and hostile_char(text.replace("\n", "")) is None
    errors = list(validator().iter_errors(json.loads(text)))
    assert errors == []


def test_an_sbom_of_a_lock_with_hostile_comments_and_markers_is_valid_and_ascii(
    tmp_path: Path,
) -> None:
    from tests.test_sbom import validator

    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "textual==8.2.8 ; python_version >= '3.11'\x1b[2J \\\n"
        "    --hash=sha256:" + "a" * 64 + "\n"
        "    # via\n    #   govtui (pyproject.toml)\n    #   evil\u202e\x07[bold]\n"
    )
    sbom = script("sbom")
    text = sbom.render(sbom.build(lock, warn=[]))
    assert text.isascii() and hostile_char(text.replace("\n", "")) is None
    assert list(validator().iter_errors(json.loads(text))) == []


@pytest.mark.parametrize("glibc", ["2.x", "2.36.1", "", "2"])
def test_lock_wheels_refuses_a_malformed_glibc_in_one_line(
    glibc: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "a.lock"
    lock.write_text("pure==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert script("lock_wheels").main([str(lock), "--glibc", glibc]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--glibc" in err
