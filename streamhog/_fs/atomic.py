"""Write-then-rename, so a failed or interrupted job never leaves a partial output.

Outputs (a Parquet file, a Zarr directory, later a model) are written under a hidden
temporary name beside the destination, ``.NAME.tmp-PID-XXXX``, and renamed into place only
on success. An existing destination is replaced only when the caller asked for it, and only
when it is the kind of output the caller writes (``replaceable``): ``--overwrite`` must never
delete a user's unrelated directory.

What a job that dies anyway (``kill -9``, power loss) leaves — its temporary, or during the
final swap the previous output moved aside as ``.NAME.old-PID-XXXX`` — is tidied by the next
job writing the same destination, but only for processes that no longer exist: a live
writer's files are never touched. A destination found moved aside and not replaced is put
back first (nothing the user had is lost).

Output-side failures become one-line :class:`~streamhog.errors.OutputError`\\ s naming the
path: a directory that cannot be written (checked before any work), a full disk, a quota or
file-size limit (errno 28, 122, 27).

Durability (fsync, msync) is what makes a checkpoint survive a power loss; it costs about
10 ms a call. Inside :func:`scratch_writes` (this thread and what it calls) the syncs are
skipped and the writes stay atomic: for model directories that do not outlive the process
(a scikit-learn estimator's temporary directory, removed at exit, which a crash loses
whatever was synced), where they took most of the time of a small ``fit``.
"""
from __future__ import annotations

import contextvars
import errno
import glob
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..errors import OutputError, OutputExistsError

#: Errors of the device being written: reported as OutputError (the partial output removed).
_SPACE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file size limit exceeded",
                 errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system"}


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a reused pid counts as alive: we then leave its files)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_temporaries(dst: Path) -> list[Path]:
    """Remove the temporaries that dead writers of ``dst`` left beside it; put back a
    destination a dead writer had moved aside and not replaced. Returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(dst.name)}\.(tmp|old)-(\d+)-")
    removed = []
    try:
        entries = list(dst.parent.iterdir())
    except OSError:
        return removed
    for entry in sorted(entries, key=lambda p: p.name):  # .old before .tmp
        m = pattern.match(entry.name)
        if not m or process_alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and not (dst.exists() or dst.is_symlink()):
            os.rename(entry, dst)  # killed between the two renames of the swap: the old output is whole
            continue
        remove_path(entry)
        removed.append(entry)
    return removed


def check_destination(dst, *, overwrite: bool, replaceable: Callable[[Path], str | None] | None = None) -> Path:
    """Fail early (before any work) when ``dst`` exists and may not be replaced.

    ``replaceable(dst)`` returns None when an existing ``dst`` is the caller's kind of output,
    else why not: then it is refused even with ``overwrite``. Temporaries of dead writers of
    ``dst`` are cleaned first (see the module docstring).
    """
    dst = Path(dst)
    if not dst.parent.exists():
        raise FileNotFoundError(f"{dst}: the directory {dst.parent} does not exist")
    clean_stale_temporaries(dst)
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{dst}: already exists; pass --overwrite to replace it")
        why = replaceable(dst) if replaceable is not None else None
        if why:
            raise OutputExistsError(f"{dst}: {why}; --overwrite replaces only an output of this command, "
                                    "so it was left as it is (remove it yourself, or choose another name)")
    return dst


def check_writable(directory: Path, name: str) -> None:
    """Create and remove a file in ``directory``: the only test root and read-only mounts honour."""
    probe = directory / f".{name}.tmp-{os.getpid()}-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write in this directory ({exc.strerror or exc})") from exc


_DURABLE = contextvars.ContextVar("streamhog_durable_writes", default=True)


@contextmanager
def scratch_writes():
    """Within this block (in this thread), skip fsync and msync: see the module docstring."""
    token = _DURABLE.set(False)
    try:
        yield
    finally:
        _DURABLE.reset(token)


def durable() -> bool:
    """False inside :func:`scratch_writes`."""
    return _DURABLE.get()


def fsync(fd: int) -> None:
    """``os.fsync(fd)``, unless inside :func:`scratch_writes`."""
    if _DURABLE.get():
        os.fsync(fd)


def fsync_directory(path: Path) -> None:
    if not _DURABLE.get():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def output_error(dst: Path, exc: BaseException) -> BaseException:
    """``exc`` as a one-line OutputError when the device being written failed, else ``exc``."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and code in _SPACE_ERRORS:
        return OutputError(f"{dst}: {_SPACE_ERRORS[code]} (errno {code}) while writing; the partial output "
                           "was removed")
    return exc


@contextmanager
def atomic_output(dst, *, overwrite: bool = False, replaceable: Callable[[Path], str | None] | None = None):
    """Yield a temporary path to write; on success it becomes ``dst``, on any error it is removed."""
    dst = check_destination(dst, overwrite=overwrite, replaceable=replaceable)
    check_writable(dst.parent, dst.name)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield tmp
    except BaseException as exc:
        remove_path(tmp)
        for sibling in dst.parent.glob(f"{glob.escape(tmp.name)}.*"):  # e.g. a writer's own side file
            remove_path(sibling)
        err = output_error(dst, exc)
        if err is exc:
            raise
        raise err from exc
    if not tmp.exists():
        raise RuntimeError(f"{dst}: nothing was written")
    check_destination(dst, overwrite=overwrite, replaceable=replaceable)  # someone may have created it meanwhile
    if dst.exists() or dst.is_symlink():
        # Move the old output aside first so that at every moment one complete version exists.
        old = dst.parent / f".{dst.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(dst, old)
        os.rename(tmp, dst)
        remove_path(old)
    else:
        os.rename(tmp, dst)
    fsync_directory(dst.parent)
