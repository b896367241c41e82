"""`govtui doctor`'s install checks: is govtui's environment still what the lock installed?

The checks, each returning `Finding`s (doctor_findings.py):

- packages: every distribution in site-packages is in `requirements.lock` at exactly its pinned
  version, none is missing, none is installed twice; one the lock does not name is a warning
  (pip itself is not a warning at the version Python bundles: `python3 -m venv` put it there),
  a failure when it declares entry points a locked library imports unasked (AUTOLOADED);
- files: every file each distribution's RECORD lists has the recorded size and SHA-256
  (`importlib.metadata`), is a regular file and no symbolic link. govtui itself is checked the
  same way: the scripts install it as a wheel (not editable), so its RECORD lists its files;
  an editable govtui fails, since nothing records what its files should be;
- strays: no file Python could import or run at start-up (.py, .pth, an extension module, a
  sourceless .pyc) and no symbolic link sits in site-packages unless a RECORD lists it. A stray
  `.pth` is how a poisoned package runs code at every start of Python. A RECORD row without a
  hash lists only a RECORD or a __pycache__ .pyc (what pip writes), and no row may point out
  of the environment; METADATA, RECORD and the lock are read only as small regular files;
- startup: a .pth a RECORD lists that runs code or adds a folder to sys.path, or a listed
  sitecustomize/usercustomize module (a poisoned release ships one with the right hash in its
  RECORD), but setuptools' distutils-precedence.pth;
- the scripts folder (.venv/bin, first on sys.path of `.venv/bin/govtui`): no unlisted module;
- path (the running environment only): no folder on sys.path that none of this covers.

The lock travels with govtui as package data (`govtui/requirements.lock`, in the checkout a
symbolic link to the repository's lock): an installed govtui finds the lock it was installed
from wherever it lives, and that copy is in govtui's own RECORD, so it is checked like every
other file.

What this cannot see, and does not claim to: someone who rewrites a file AND its RECORD line
(the hash of the wheel it came from is not kept after installation), and `__pycache__/*.pyc`
files, which pip lists in RECORD without a hash: a forged timestamp .pyc with its source's
mtime and size runs instead of the unchanged .py (tests/test_attack_issue15.py, xfail). Read-only: nothing here writes a file.
Standard library only, so it runs before anything else of govtui is trusted."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import re
import stat
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from importlib import metadata
from importlib.machinery import BYTECODE_SUFFIXES, EXTENSION_SUFFIXES, SOURCE_SUFFIXES
from pathlib import Path

from govtui import lockfile
from govtui.errors import InputError
from govtui.lockfile import Pin
from govtui.services.doctor_findings import Finding
from govtui.text import one_line

# The lock as package data: beside this package's top (govtui/requirements.lock).
LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
# Per distribution, at most this many changed files are named one by one; then a count.
NAMED_PER_DISTRIBUTION = 5
# At most this many stray files are named one by one; then a count.
NAMED_STRAYS = 20
_CHUNK = 1 << 20
# What RECORD may name (pip writes sha256); a weaker one would let a changed file pass.
_HASHES = frozenset(["sha256", "sha384", "sha512"])
# What Python runs from a site-packages folder: modules, extension modules, sourceless
# bytecode next to no source, and .pth files (executed by `site` at every start-up).
_RUNNABLE = frozenset([*SOURCE_SUFFIXES, *EXTENSION_SUFFIXES, *BYTECODE_SUFFIXES, ".pth"])
# What Python imports from the folder of the script it runs (.venv/bin: sys.path[0]).
_IMPORTABLE = frozenset([*SOURCE_SUFFIXES, *EXTENSION_SUFFIXES, *BYTECODE_SUFFIXES])
# A metadata file (RECORD, METADATA, direct_url.json, a .pth) larger than this is refused
# unread: a RECORD of the biggest package in the lock is ~300 KB.
MAX_METADATA = 32 << 20
# The start-up hooks (.pth files with an import line) the runtime lock is known to ship, by
# distribution and file: setuptools' switch between its distutils and the standard library's.
KNOWN_HOOKS = frozenset([("setuptools", "distutils-precedence.pth")])


# Entry-point groups a library in the lock imports every member of without being asked:
# keyring loads every `keyring.backends` plugin installed when it picks its backend. A package
# the lock does not name that declares one runs its code in govtui: a failure, not a warning.
AUTOLOADED = frozenset(["keyring.backends"])
# The modules `site` imports at every start-up when they are on sys.path.
_CUSTOMIZE = frozenset(["sitecustomize", "usercustomize"])


class _Unreadable(Exception):
    """A metadata file that is not a small regular file (a FIFO, a device, a link, huge)."""


def _read_small(path: Path, limit: int = MAX_METADATA) -> str:
    """The UTF-8 text of the regular file at `path` (never through a symbolic link, never
    waiting on a FIFO, never more than `limit` bytes); FileNotFoundError when it is absent,
    _Unreadable saying why it is not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if os.path.islink(path):
            raise _Unreadable("a symbolic link") from None
        raise _Unreadable(exc.strerror or type(exc).__name__) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable("not a regular file")
        if info.st_size > limit:
            raise _Unreadable(f"{info.st_size} bytes, more than a metadata file holds")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _Unreadable("grew while read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable("not UTF-8 text") from None


def site_dirs() -> list[Path]:
    """The site-packages folders of the running environment (purelib, platlib), once each."""
    seen: dict[Path, None] = {}
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib"):
        path = Path(paths[key])
        if path.is_dir():
            seen.setdefault(path.resolve(), None)
    return list(seen)


@dataclass
class _Installed:
    name: str  # canonical
    version: str
    folder: Path  # the .dist-info (or .egg-info) folder
    site: Path  # the site-packages folder RECORD's paths are relative to
    problem: str | None = None  # why its METADATA could not be read

    @property
    def where(self) -> str:
        return self.folder.name


@dataclass
class _Tally:
    files: int = 0
    findings: list[Finding] = field(default_factory=list)


def _installed(dirs: Sequence[Path]) -> list[_Installed]:
    """Every distribution whose metadata folder sits in `dirs`. Found by listing the folders,
    not through `metadata.distributions()`: that asks every finder on sys.meta_path, and the
    importlib_metadata backport (keyring loads it on Python 3.11) registers one whose `files`
    silently leaves out the files that are missing, which is what this check must see. The
    METADATA is read here too (_read_small): importlib's reader would wait on a FIFO."""
    found: list[_Installed] = []
    for site in dirs:
        for entry in sorted(os.scandir(site), key=lambda e: e.name):
            if not entry.name.endswith((".dist-info", ".egg-info")) or not entry.is_dir():
                continue
            folder = Path(entry.path)
            name, version, problem = entry.name.split("-")[0], "?", None
            leaf = "METADATA" if entry.name.endswith(".dist-info") else "PKG-INFO"
            try:
                headers = HeaderParser().parsestr(_read_small(folder / leaf))
                name = headers["Name"] or name
                version = headers["Version"] or version
            except FileNotFoundError:
                problem = f"no {leaf}"
            except _Unreadable as exc:
                problem = f"{leaf} unreadable ({exc})"
            found.append(
                _Installed(lockfile.normalise(str(name)), str(version), folder, site, problem)
            )
    return sorted(found, key=lambda i: (i.name, i.where))


@dataclass(frozen=True)
class _Row:
    """One line of a RECORD: a path relative to site-packages, its hash and size if given."""

    path: str
    algorithm: str | None
    digest: str | None
    size: int | None


def _record(inst: _Installed) -> list[_Row] | None:
    """The rows of the distribution's RECORD, read as written (None: it has no RECORD)."""
    try:
        text = _read_small(inst.folder / "RECORD")
    except FileNotFoundError:
        return None
    rows: list[_Row] = []
    for fields in csv.reader(text.splitlines()):
        if not fields or not fields[0]:
            continue
        algorithm = digest = None
        if len(fields) > 1 and "=" in fields[1]:
            algorithm, _, digest = fields[1].partition("=")
        size_text = fields[2] if len(fields) > 2 else ""
        size = int(size_text) if size_text.isdigit() else None
        rows.append(_Row(fields[0], algorithm, digest, size))
    return rows


def _autoloaded_groups(inst: _Installed) -> list[str]:
    """The entry-point groups of AUTOLOADED that the distribution declares (entry_points.txt;
    one that cannot be read counts as declaring them all)."""
    try:
        text = _read_small(inst.folder / "entry_points.txt", 1 << 20)
    except FileNotFoundError:
        return []
    except _Unreadable:
        return sorted(AUTOLOADED)
    groups = {m.strip() for m in re.findall(r"^\s*\[([^\]]*)\]", text, re.MULTILINE)}
    return sorted(groups & AUTOLOADED)


def _bundled_pip() -> str | None:
    """The pip version this Python bundles (what `python3 -m venv` installs), if it has one."""
    try:
        import ensurepip
    except ImportError:  # Debian without python3-venv
        return None
    return ensurepip.version()


def _show(value: object) -> str:
    return one_line(value, 200)


def _check_packages(installed: list[_Installed], pins: dict[str, Pin]) -> list[Finding]:
    findings: list[Finding] = []
    by_name: dict[str, list[_Installed]] = {}
    for inst in installed:
        by_name.setdefault(inst.name, []).append(inst)
    matched = 0
    pip = _bundled_pip()
    for name, insts in sorted(by_name.items()):
        shown = _show(name)
        if len(insts) > 1:
            both = ", ".join(f"{_show(i.version)} ({_show(i.where)})" for i in insts)
            findings.append(Finding("packages", "fail", shown, f"installed more than once: {both}"))
            continue
        (inst,) = insts
        pin = pins.get(name)
        if name == "govtui":
            continue  # the project itself; its files are checked through its RECORD
        if pin is None:
            if name == "pip" and inst.version == pip:
                continue  # the installer `python3 -m venv` put there, as this Python bundles it
            hooks = _autoloaded_groups(inst)
            if hooks:
                detail = (
                    f"installed {_show(inst.version)}, not in requirements.lock, and it declares "
                    f"{_show(', '.join(hooks))} entry points, which govtui's libraries import at "
                    "every start: its code runs in govtui"
                )
                findings.append(Finding("packages", "fail", shown, detail))
                continue
            findings.append(
                Finding(
                    "packages",
                    "warn",
                    shown,
                    f"installed {_show(inst.version)}, not in requirements.lock",
                )
            )
        elif inst.version != pin.version:
            findings.append(
                Finding(
                    "packages",
                    "fail",
                    shown,
                    f"installed {_show(inst.version)}, requirements.lock pins {_show(pin.version)}",
                )
            )
        else:
            matched += 1
    if "govtui" not in by_name:
        findings.append(
            Finding(
                "packages",
                "fail",
                "govtui",
                "not installed in this environment's site-packages: its own files cannot be "
                "checked (install it as scripts/run does)",
            )
        )
    for name, pin in sorted(pins.items()):
        if name in by_name:
            continue
        if pin.marker is not None:
            continue  # needed only where its marker holds; absent here is no risk
        findings.append(
            Finding(
                "packages",
                "fail",
                _show(name),
                f"requirements.lock pins {_show(pin.version)}, not installed",
            )
        )
    if not any(f.status == "fail" for f in findings):
        findings.append(
            Finding(
                "packages",
                "ok",
                "requirements.lock",
                f"{matched} distributions installed at their locked versions",
            )
        )
    return findings


def _file_problem(path: Path, algorithm: str, expected: str, size: int | None) -> str | None:
    """Why the file at `path` is not what RECORD says, or None when it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        if os.path.islink(path):
            return "a symbolic link, not the file RECORD lists"
        return f"cannot be read ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if size is not None and info.st_size != size:
            return f"{info.st_size} bytes, RECORD says {size}"
        if algorithm not in _HASHES:
            return f"RECORD gives a {_show(algorithm)} hash, not SHA-256: not accepted"
        digest = hashlib.new(algorithm)
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if actual != expected:
        return f"content differs from RECORD ({algorithm})"
    return None


def _prefix(site: Path) -> Path:
    """The environment a site-packages folder belongs to (.venv for .venv/lib/python3.X/
    site-packages): where a RECORD's rows may point (pip's scripts are ../../../bin/NAME)."""
    if site.parent.name.startswith("python") and site.parent.parent.name in ("lib", "lib64"):
        return site.parents[2]
    return site


def _check_files(inst: _Installed, recorded: dict[str, str], tally: _Tally) -> None:
    label = f"{_show(inst.name)} {_show(inst.version)}"
    if inst.problem is not None:
        tally.findings.append(
            Finding("files", "fail", _show(inst.where), f"{label}: {inst.problem}")
        )
    try:
        rows = _record(inst)
    except (OSError, _Unreadable, csv.Error) as exc:
        tally.findings.append(
            Finding("files", "fail", _show(inst.where), f"{label}: RECORD unreadable ({exc})")
        )
        return
    if rows is None:
        tally.findings.append(
            Finding("files", "fail", _show(inst.where), f"{label}: no RECORD, files not checked")
        )
        return
    if inst.name == "govtui" and _editable(inst.folder):
        tally.findings.append(
            Finding(
                "files",
                "fail",
                "govtui",
                "installed editable: its RECORD lists no files of govtui, so they cannot be "
                "checked (install it as scripts/run does)",
            )
        )
    problems: list[tuple[str, str]] = []
    prefix = str(_prefix(inst.site)) + os.sep
    for row in rows:
        path = os.path.normpath(os.path.join(inst.site, row.path))
        if not path.startswith(prefix):
            problems.append((row.path, "outside the environment: RECORD may not list it"))
            continue
        if row.algorithm is None or row.digest is None:
            # pip writes RECORD itself and the .pyc files it compiled after unpacking without
            # a hash; any other row without one would make a planted file "listed".
            # (A RECORD is never run: one naming another .dist-info's RECORD hides nothing.)
            parts = Path(path).parts
            is_record = parts[-1] == "RECORD" and parts[-2].endswith(".dist-info")
            if is_record or (path.endswith(".pyc") and "__pycache__" in parts):
                recorded[path] = inst.name
            else:
                problems.append((row.path, "listed without a hash: RECORD lists only itself so"))
            continue
        recorded[path] = inst.name
        tally.files += 1
        problem = _file_problem(Path(path), row.algorithm, row.digest, row.size)
        if problem is not None:
            problems.append((row.path, problem))
    for name, problem in problems[:NAMED_PER_DISTRIBUTION]:
        tally.findings.append(Finding("files", "fail", _show(name), f"{label}: {problem}"))
    if len(problems) > NAMED_PER_DISTRIBUTION:
        more = len(problems) - NAMED_PER_DISTRIBUTION
        tally.findings.append(
            Finding("files", "fail", _show(inst.name), f"{label}: {more} more files differ")
        )


def _editable(dist: metadata.Distribution | Path) -> bool:
    """Whether direct_url.json says the distribution (or its .dist-info folder) is editable."""
    if isinstance(dist, Path):
        try:
            text = _read_small(dist / "direct_url.json")
        except (FileNotFoundError, _Unreadable):
            text = ""
    else:
        text = dist.read_text("direct_url.json") or ""
    return bool(re.search(r'"editable"\s*:\s*true', text))


def _runnable(name: str) -> bool:
    # Not os.path.splitext: it gives ".pth" no suffix, and `site` runs a file named ".pth".
    return name.endswith(".pth") or os.path.splitext(name)[1] in _RUNNABLE


def _strays(dirs: Sequence[Path], recorded: dict[str, str]) -> list[str]:
    """Files in `dirs` that Python could run and no RECORD lists, and unlisted symbolic links."""
    strays: list[str] = []
    for top in dirs:
        for folder, subdirs, names in os.walk(top):
            linked = [d for d in subdirs if os.path.islink(os.path.join(folder, d))]
            subdirs[:] = [d for d in subdirs if d != "__pycache__" and d not in linked]
            for name in [*names, *linked]:
                path = os.path.normpath(os.path.join(folder, name))
                if path in recorded:
                    continue
                if _runnable(name) or name in linked or os.path.islink(path):
                    strays.append(path)
    return sorted(strays)


def _script_strays(scripts: Path, recorded: dict[str, str]) -> list[str]:
    """Modules in the scripts folder (.venv/bin) no RECORD lists: `.venv/bin/govtui` runs with
    that folder first on sys.path, so a bin/keyring.py would be imported instead of keyring."""
    try:
        entries = sorted(os.scandir(scripts), key=lambda e: e.name)
    except OSError:
        return []
    return [
        os.path.normpath(e.path)
        for e in entries
        if os.path.splitext(e.name)[1] in _IMPORTABLE and os.path.normpath(e.path) not in recorded
    ]


def _hook_findings(dirs: Sequence[Path], recorded: dict[str, str]) -> list[Finding]:
    """The .pth files a RECORD lists that do something at every start of Python: an import line
    (code run by `site`) or a path line naming a folder (one more folder on sys.path that no
    check covers). A poisoned release ships one with the right hash in its RECORD; the ones the
    lock is known to ship (KNOWN_HOOKS) are not named. Unlisted .pth files are strays."""
    findings: list[Finding] = []
    for top in dirs:
        for entry in sorted(os.scandir(top), key=lambda e: e.name):
            path = os.path.normpath(entry.path)
            owner = recorded.get(path)
            if owner is None:
                continue
            if os.path.splitext(entry.name)[0] in _CUSTOMIZE:
                detail = (
                    f"{_show(owner)} lists this module in its RECORD; `site` imports it at every "
                    "start of Python"
                )
                findings.append(Finding("startup", "fail", _show(entry.name), detail))
                continue
            if not entry.name.endswith(".pth"):
                continue
            if (owner, entry.name) in KNOWN_HOOKS:
                continue
            try:
                text = _read_small(Path(path), 1 << 20)
            except (OSError, _Unreadable) as exc:
                detail = f"{_show(owner)}: a .pth file that cannot be read ({exc})"
                findings.append(Finding("startup", "fail", _show(entry.name), detail))
                continue
            for raw in text.splitlines():
                line = raw.rstrip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith(("import ", "import\t")):
                    what = f"runs code at every start of Python (import line: {_show(line)})"
                else:
                    folder = os.path.normpath(os.path.join(top, line))
                    if not os.path.isdir(folder):
                        continue
                    if any(Path(folder).resolve().is_relative_to(d) for d in dirs):
                        continue  # a folder of site-packages: the strays check walks it
                    what = f"puts {_show(folder)} on the import path, and no check covers it"
                detail = f"{_show(owner)} lists this .pth file in its RECORD; it {what}"
                findings.append(Finding("startup", "fail", _show(entry.name), detail))
                break
    return findings


def _stdlib_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    found = {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib")}
    return sorted(found)


def _path_findings(folders: Sequence[Path], scripts: Path | None) -> list[Finding]:
    """The folders on this Python's sys.path that no check here covers (PYTHONPATH, the user
    site or system site-packages let in, the current folder of `python -m`): their files are
    imported and nobody compares them with anything."""
    stdlib = _stdlib_dirs()
    covered = {*folders, *stdlib}
    if scripts is not None:
        covered.add(scripts.resolve())
    findings: list[Finding] = []
    for entry in dict.fromkeys(sys.path):
        if not os.path.exists(entry or "."):  # never raises (a folder we may not enter)
            continue
        where = Path(entry or os.getcwd()).resolve()
        if where in covered:
            continue
        if where.parent in stdlib and where.name == "lib-dynload":
            continue
        if where.suffix == ".zip" and any(where.parent == s.parent for s in stdlib):
            continue
        findings.append(
            Finding(
                "path",
                "fail",
                _show(where),
                "on Python's import path, and no RECORD covers its files (PYTHONPATH, a user or "
                "system site-packages, the current folder?)",
            )
        )
    return findings


def _stray_finding(path: str, dirs: Sequence[Path], scripts: Path | None = None) -> Finding:
    shown = path
    for top in dirs:
        if path.startswith(str(top) + os.sep):
            shown = path[len(str(top)) + 1 :]
            break
    if scripts is not None and os.path.dirname(path) == os.path.normpath(scripts):
        shown = os.path.join(scripts.name, os.path.basename(path))
        what = "a module beside govtui's script no RECORD lists: it is imported before any package"
    elif os.path.islink(path):
        what = "a symbolic link no RECORD lists"
    elif path.endswith(".pth"):
        what = "a .pth file no RECORD lists: Python runs its import lines at every start-up"
    else:
        what = "a file Python can import that no RECORD lists"
    return Finding("strays", "fail", _show(shown), what)


def check_install(
    *, dirs: Iterable[Path] | None = None, lock: Path | None = None, scripts: Path | None = None
) -> list[Finding]:
    """Every install check, on the running environment's site-packages (or `dirs`) and scripts
    folder (or `scripts`) against govtui's lock (or `lock`); for the running environment also
    its sys.path. Read-only; about 2 s for the runtime lock's ~35 packages."""
    folders = site_dirs() if dirs is None else [Path(d).resolve() for d in dirs]
    if dirs is None and scripts is None:
        scripts = Path(sysconfig.get_paths()["scripts"])
    lock_file = LOCK if lock is None else lock
    try:
        pins = {pin.name: pin for pin in lockfile.read(lock_file)}
    except InputError as exc:
        return [
            Finding(
                "packages",
                "fail",
                _show(lock_file),
                f"{_show(exc)}: nothing to check the install against",
            )
        ]
    installed = _installed(folders)
    findings = _check_packages(installed, pins)
    tally = _Tally()
    recorded: dict[str, str] = {}
    for inst in installed:
        _check_files(inst, recorded, tally)
    findings.extend(tally.findings)
    if not tally.findings:
        findings.append(
            Finding(
                "files",
                "ok",
                "RECORD",
                f"{tally.files} files of {len(installed)} distributions match their RECORD",
            )
        )
    findings.extend(_hook_findings(folders, recorded))
    strays = _strays(folders, recorded)
    if scripts is not None:
        strays += _script_strays(scripts, recorded)
    findings.extend(_stray_finding(path, folders, scripts) for path in strays[:NAMED_STRAYS])
    if len(strays) > NAMED_STRAYS:
        findings.append(
            Finding(
                "strays",
                "fail",
                "site-packages",
                f"{len(strays) - NAMED_STRAYS} more files no RECORD lists",
            )
        )
    if not strays:
        shown = ", ".join(_show(d) for d in folders)
        findings.append(
            Finding("strays", "ok", "site-packages", f"no file outside a RECORD in {shown}")
        )
    if dirs is None:
        findings.extend(_path_findings(folders, scripts))
    return findings
