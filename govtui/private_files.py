"""Files govtui writes for itself or at the user's request (the audit checkpoint, every `--out`):
private and atomic, and never written through anything planted in their place.

The content goes to a temporary file made in the target's own folder by `mkstemp`
(O_CREAT|O_EXCL|O_NOFOLLOW under a random name, so nothing planted beforehand is opened),
made 0600 whatever the umask, fsynced, and renamed over the target: a crash or an error leaves
the old file or the new one, never half of one, and the temporary file is removed. The rename
replaces a symbolic link planted at the last moment rather than following it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

from govtui.errors import InputError

PRIVATE = 0o600


def check_target(path: Path, what: str = "file") -> None:
    """Refuse, in one line, a target that cannot be replaced by a private regular file: a
    missing folder, a folder, a symbolic link, a FIFO or a device in its place."""
    folder = path.parent
    if not folder.is_dir():  # follows links: a linked folder is the user's choice
        raise InputError(f"cannot write the {what} {path}: the folder {folder} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot write the {what} {path}: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise InputError(f"cannot write the {what} {path}: it is a symbolic link (not followed)")
    if stat.S_ISDIR(mode):
        raise InputError(f"cannot write the {what} {path}: it is a folder")
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot write the {what} {path}: it is not a regular file")


@contextmanager
def private_output(path: Path, what: str = "file") -> Iterator[TextIO]:
    """A text stream whose content replaces `path` (mode 0600) when the block ends without an
    error; on an error the target is untouched and the temporary file is gone."""
    with _private(path, what, binary=False) as out:
        yield out  # type: ignore[misc]


@contextmanager
def private_binary_output(path: Path, what: str = "file") -> Iterator[BinaryIO]:
    """As private_output, for bytes written as they come (an evidence pack's zip, streamed):
    seekable, so a zip writer can fill in each entry's sizes after its data."""
    with _private(path, what, binary=True) as out:
        yield out  # type: ignore[misc]


@contextmanager
def _private(path: Path, what: str, *, binary: bool) -> Iterator[TextIO | BinaryIO]:
    check_target(path, what)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write the {what} {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, PRIVATE)  # mkstemp's 0600 is masked by the umask: say it outright
        out: TextIO | BinaryIO
        out = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        check_target(path, what)  # narrows the window; the rename never follows a link anyway
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the {what} {path}: {exc.strerror}") from None
        raise
    _fsync_folder(path.parent)


def write_private(path: Path, text: str, what: str = "file") -> None:
    """Replace `path` atomically by a private (0600) file holding `text`."""
    with private_output(path, what) as out:
        out.write(text)


def _fsync_folder(folder: Path) -> None:
    # The rename itself survives a crash only once the folder's entry is on disk.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
