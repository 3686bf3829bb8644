"""The pointer file naming the live version, the publish lock, and the version folders they govern.

`CURRENT` holds one folder name and is replaced atomically; `.lock` is held
by the one process allowed to publish. Superseded versions and a killed
build's leftovers are removed here, under the lock: a version as soon as no
reader holds it (each loaded version holds a shared lock on its manifest),
at the latest at the next build.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from index.errors import (
    IndexBusy,
    IndexNotFound,
    PointerDamaged,
    build_fix,
    rebuild_fix,
)
from index.store.version import (
    MANIFEST,
    fsync,
)

POINTER = "CURRENT"
LOCK = ".lock"
# What CURRENT may name: a version folder as publish() names it, one path component.
_VERSION_NAME = re.compile(r"v-[A-Za-z0-9_.-]+")
_MAX_POINTER_BYTES = 255


def current_version(index_dir: Path) -> Path | None:
    """The live version folder, or None when nothing has been published.

    Raises:
        PointerDamaged: CURRENT cannot be read, is not text, or does not name a
            version folder (`v-...`) directly inside `index_dir`.
    """
    pointer = index_dir / POINTER
    try:
        with open(pointer, "rb") as handle:
            data = handle.read(_MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PointerDamaged(
            f"index pointer {pointer} cannot be read ({exc.strerror or exc})", rebuild_fix(index_dir)
        ) from None
    try:
        name = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PointerDamaged(
            f"index pointer {pointer} is not text (it should name a version folder)", rebuild_fix(index_dir)
        ) from None
    if not name:
        raise PointerDamaged(f"index pointer {pointer} is empty", rebuild_fix(index_dir))
    # One folder name, never a path: whatever CURRENT holds, nothing outside the index folder is read.
    if len(data) > _MAX_POINTER_BYTES or not _VERSION_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise PointerDamaged(
            f"index pointer {pointer} names {shown!r}, which is not a version folder of {index_dir}",
            rebuild_fix(index_dir),
        )
    version = index_dir / name
    # The named folder must be a real folder of the index folder: a link would make every
    # reader trust files anyone who can write the index folder may point anywhere.
    if version.is_symlink() or not _inside(version, index_dir):
        target = os.path.realpath(version)
        raise PointerDamaged(
            f"index version {version} is a link to {target}, outside the index folder {index_dir}; "
            "a version must be a folder inside it",
            f"remove the link, then {rebuild_fix(index_dir)}",
        )
    return version


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop: not a folder inside
        return False


def live_version(index_dir: Path) -> Path:
    """The live version folder.

    Raises:
        IndexNotFound: Nothing has been published in `index_dir`.
    """
    version = current_version(index_dir)
    if version is None:
        raise IndexNotFound(f"no index found in {index_dir}", build_fix(index_dir))
    return version


@contextmanager
def publish_lock(index_dir: Path) -> Iterator[None]:
    """Hold the folder's publish lock, or raise IndexBusy at once if another process has it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexBusy(
                f"{index_dir} is being updated by {holder}", "wait for it to finish and run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def switch_pointer(index_dir: Path, name: str) -> None:
    temporary = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    try:
        temporary.write_text(name + "\n", encoding="utf-8")
        fsync(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, index_dir / POINTER)
    fsync(index_dir)


def hold_for_reading(folder: Path) -> BinaryIO:
    """Mark a version folder as read by this process until the returned handle is closed (a shared lock).

    `remove_old_versions` removes at once a version no reader holds.

    Raises:
        OSError: The folder has no manifest, or it is being removed.
    """
    handle = open(folder / MANIFEST, "rb")
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FileNotFoundError(errno.ENOENT, "the version is being removed", str(folder)) from None
    return handle


def remove_old_versions(index_dir: Path, live: str, keep: int) -> None:
    """Delete every version but `live`: at once each one no reader holds, and of those in use all but the `keep` newest.

    A reader opens all it needs when it loads (and retries on the new
    version if its own vanished while it loaded), so a version is kept only
    for the few readers that may still be loading it. Caller holds `publish_lock`.
    """
    old = [path for path in index_dir.glob("v-*") if path.name != live]
    in_use_kept = 0
    for path in sorted(old, key=_age):
        if path.is_symlink():
            path.unlink(missing_ok=True)
            continue
        lock = _hold_for_removal(path)
        if lock is None and in_use_kept < keep:
            in_use_kept += 1
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            if lock is not None:
                lock.close()


def _age(path: Path) -> float:
    """Newest first: by the manifest's modification time (a version folder without one goes first)."""
    try:
        return -(path / MANIFEST).stat().st_mtime
    except OSError:
        return float("-inf")


def _hold_for_removal(folder: Path) -> BinaryIO | None:
    """An exclusive lock on a version no reader holds, or None while one does (a folder with no manifest: no lock)."""
    try:
        handle = open(folder / MANIFEST, "rb")
    except OSError:  # a damaged or half-removed version: no reader can load it
        return _Unlocked()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class _Unlocked:
    """What `_hold_for_removal` returns for a folder nobody can be reading (no manifest)."""

    def close(self) -> None:
        pass


def remove_leftovers(index_dir: Path) -> None:
    """Staging folders and pointer drafts from a build that was killed (we hold the lock)."""
    for path in index_dir.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in index_dir.glob(f".{POINTER}.*"):
        path.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    """Delete a version folder, or only the link when it is one (never what a link points at)."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
