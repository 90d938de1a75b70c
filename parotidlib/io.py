"""File helpers shared by every stage: atomic writing (a reader never sees a half-written
output), owned temporary folders (built beside their destination, renamed into place, and
cleaned up by the next run when their creator died), folder locks (:func:`folder_lock`: one
process at a time writes into a run folder, an import folder or a synthetic cohort) and
SHA-256 hashing (one helper for files, text and JSON-able values).

Everything written here honours the process umask, as any other tool's output does: a
temporary file is created with mode 0o666 and a temporary folder with 0o777, both less the
umask (and any default ACL) by the operating system itself, so what is renamed into place
has the permissions of an ordinary file or folder (0o644 / 0o755 under umask 0o022), not
the private 0o600 / 0o700 of :func:`tempfile.mkstemp` / :func:`tempfile.mkdtemp`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The file inside an owned temporary folder that names the process that made it.
OWNER_FILE = ".owner.json"
#: A leftover folder whose owner cannot be checked (no owner file, another host or pid
#: namespace) is removed only when nothing in it changed for this long (seconds).
STALE_AGE_S = 24 * 3600.0
#: Random part of a temporary name: 8 characters, as tempfile.mkdtemp/mkstemp make them
#: (lowercase letters, digits, "_"); ours are hexadecimal, a subset.
_RANDOM_PART = r"[a-z0-9_]{8}"


def _create_unique(parent: Path, prefix: str, suffix: str, create: Callable[[Path], None]
                   ) -> Path:
    """Create ``parent/<prefix><8 random characters><suffix>`` with ``create``; return it."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            create(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name {prefix}XXXXXXXX{suffix} in {parent}")


#: Errors of a write that name no file; :func:`atomic_path` names the destination in them.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _create_file(path: Path) -> None:
    # O_EXCL: never an existing file; mode 0o666 less the umask, like open(path, "w")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    The temporary file lives in the same folder so that the final ``os.replace`` is atomic
    on POSIX file systems. It is created empty with the permissions of an ordinary new file
    (0o666 less the umask), which the file keeps when the caller writes into it, so
    ``path`` ends up readable as the umask allows. On an exception the temporary file is
    removed and ``path`` keeps its previous content (or stays absent); a write error that
    names no file (a full disk, a quota) is raised again naming ``path``.

    Examples
    --------
    >>> with atomic_path("out.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_unique(path.parent, f".{path.name}.", ".tmp", _create_file)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None and exc.errno in _WRITE_ERRNOS:
            # a failed write names no file ("[Errno 28] No space left on device"): name ours
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


# --------------------------------------------------------------------------- owned folders


def _read_first_line(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.readline().strip() or None
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot; Linux), or None."""
    stat = _read_first_line(f"/proc/{pid}/stat")
    if stat is None or ")" not in stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
    return fields[19] if len(fields) > 19 else None  # field 22, starttime


def _is_zombie(pid: int) -> bool:
    """Whether process ``pid`` has exited but not been reaped yet (state Z; Linux).

    ``os.kill(pid, 0)`` succeeds on such a process, although it holds nothing any more: a
    killed run's kernel can stay a zombie for a while when its parent died with it.
    """
    stat = _read_first_line(f"/proc/{pid}/stat")
    if stat is None or ")" not in stat:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _owner_record() -> dict[str, Any]:
    """What identifies this process: pid, host, boot, pid namespace and start time."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(),
            "boot_id": _read_first_line("/proc/sys/kernel/random/boot_id"),
            "pid_ns": _pid_namespace(), "start": _process_start(pid)}


def make_temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """Create an empty temporary folder ``parent/<prefix>XXXXXXXX<suffix>`` owned by this process.

    The folder gets the permissions of an ordinary new folder (0o777 less the umask) and
    holds :data:`OWNER_FILE`, which names this process, so that a later run can tell a
    leftover of a dead run from a live run's folder (:func:`remove_stale_temp_dirs`). Call
    :func:`release_temp_dir` before renaming the folder into place.

    Parameters
    ----------
    parent : path
        The folder to create it in (the destination's folder, for an atomic rename).
    prefix, suffix : str
        The name around the 8 random characters.

    Returns
    -------
    Path
    """
    parent = Path(parent)
    folder = _create_unique(parent, prefix, suffix, lambda p: p.mkdir(mode=0o777))
    try:
        (folder / OWNER_FILE).write_text(json.dumps(_owner_record()) + "\n")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def release_temp_dir(folder: str | os.PathLike) -> None:
    """Remove the owner file of a folder made by :func:`make_temp_dir` (before it is renamed)."""
    (Path(folder) / OWNER_FILE).unlink(missing_ok=True)


def _owner_state(folder: Path) -> str:
    """``"alive"``, ``"dead"`` or ``"unknown"``: the state of the process that made ``folder``."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        pid = int(owner["pid"])
        host = str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"  # none, or being written: only the age can tell
    me = _owner_record()
    if host != me["host"] or pid <= 0:
        return "unknown"  # another machine sharing the folder: its processes are not ours
    if owner.get("boot_id") and me["boot_id"] and owner["boot_id"] != me["boot_id"]:
        return "dead"  # made before this machine last booted
    if owner.get("pid_ns") != me["pid_ns"]:
        return "unknown"  # another container: the pid means another process here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return "unknown"
    if _is_zombie(pid):
        return "dead"
    start = _process_start(pid)
    if owner.get("start") and start and owner["start"] != start:
        return "dead"  # the pid was reused by a process started later
    return "alive"


def _last_change(folder: Path) -> float:
    """Newest modification time (epoch s) of ``folder`` and anything in it."""
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def remove_stale_temp_dirs(parent: str | os.PathLike, prefix: str, suffix: str = "", *,
                           max_age_s: float = STALE_AGE_S) -> list[Path]:
    """Remove leftover temporary folders of dead runs: ``parent/<prefix>XXXXXXXX<suffix>``.

    A folder made by :func:`make_temp_dir` is removed when the process its owner file names
    is dead (on this host: ``os.kill(pid, 0)`` raises ProcessLookupError, the pid now
    belongs to a process started later, or the machine has rebooted since). A folder whose
    owner cannot be checked (no owner file, as the kit's earlier versions and
    ``tempfile.mkdtemp`` left them; another host or pid namespace) is removed only when
    nothing in it changed for ``max_age_s``. A folder of a live process is never touched;
    nor is anything that is not a folder or does not match the name exactly.

    Parameters
    ----------
    parent : path
        The folder to look in (a missing one holds nothing).
    prefix, suffix : str
        The names of the leftovers, as given to :func:`make_temp_dir`.
    max_age_s : float
        Age (seconds since the last change inside) after which a folder of an unknown owner
        counts as abandoned.

    Returns
    -------
    list of Path
        The folders removed.
    """
    parent = Path(parent)
    pattern = re.compile(re.escape(prefix) + _RANDOM_PART + re.escape(suffix))
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not pattern.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        state = _owner_state(entry)
        if state == "alive":
            continue
        try:
            if state == "unknown" and time.time() - _last_change(entry) < max_age_s:
                continue
        except OSError:  # removed meanwhile (e.g. by its owner)
            continue
        logger.info("removing %s, left by a run that %s", entry,
                    "died" if state == "dead" else f"has not changed it for {max_age_s:.0f} s")
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (volumes of hundreds of MB)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_text(parts: str | Iterable[str]) -> str:
    """Hex SHA-256 of a string, or of strings joined by newlines."""
    text = parts if isinstance(parts, str) else "\n".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of a JSON-able value, keys sorted (stable across runs and machines)."""
    return sha256_text(json.dumps(value, sort_keys=True))


# --------------------------------------------------------------------------- folder locks


#: The lock file :func:`folder_lock` takes inside a folder (unless told another).
LOCK_NAME = ".parotidlib.lock"
#: How often a waiting :func:`folder_lock` tries again (seconds).
_LOCK_POLL_S = 0.1


class FolderLockedError(RuntimeError):
    """Another live process holds the lock of a folder (:func:`folder_lock`).

    Attributes
    ----------
    folder : Path
        The locked folder.
    lock_file : Path
        Its lock file.
    holder : dict
        What the holder wrote into the lock file (``pid``, ``host``, ``since``); empty when
        unreadable.
    """

    def __init__(self, message: str, folder: Path, lock_file: Path,
                 holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.folder, self.lock_file, self.holder = folder, lock_file, holder

    def __reduce__(self):  # picklable across worker processes
        return (FolderLockedError, (str(self), self.folder, self.lock_file, self.holder))


#: Locks this process holds: lock file -> [fd, depth, pid] (re-entrant within a process).
_HELD: dict[str, list[int]] = {}
_HELD_GUARD = threading.Lock()


def _read_holder(fd: int) -> dict[str, Any]:
    """The record of the lock's holder (retried briefly: it writes it just after locking)."""
    for _ in range(20):
        try:
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            holder = json.loads(text)
            if isinstance(holder, dict) and holder.get("pid"):
                return holder
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return {}


def _open_lock_file(lock_file: Path) -> int | None:
    """An fd of the lock file (created if absent); None where it can be neither created nor
    opened (a read-only folder: nobody can write there, so there is nothing to guard)."""
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    try:
        return os.open(lock_file, os.O_RDONLY)  # flock works on a read-only descriptor
    except OSError:
        logger.debug("cannot create or open %s (read-only folder): not locked", lock_file)
        return None


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "the folder", *, wait: bool = False,
                timeout_s: float | None = None, lock_file: str | os.PathLike | None = None
                ) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` while the block runs.

    The lock is ``fcntl.flock(LOCK_EX)`` on a lock file (``folder/.parotidlib.lock`` unless
    ``lock_file`` names another, e.g. one beside a folder that is replaced as a whole). The
    kernel releases it when the process ends, however it ends (``kill -9`` included), so a
    lock is never stale. The lock file records the holder's pid, host and start time, which
    another process names when it finds the folder locked; the holder removes it before it
    lets go (a process that was waiting on the removed file notices and takes the new one),
    so no lock file stays behind, and one left by a killed process is taken over. The lock
    is re-entrant within one process (a batch that holds its folder runs its curation in the
    same folder), also across its threads, and it is not inherited by processes started
    afterwards (a forked worker shares its parent's lock; an exec'd one does not).
    Where the lock file can neither be created nor opened (a read-only folder), the block
    runs unlocked: nothing can be written there anyway.

    Parameters
    ----------
    folder : path
        The folder guarded; created (with its parents) if absent and the lock file is the
        default one inside it (else only the lock file's folder is created).
    what : str
        What the folder is, for messages (``"the run folder"``, ``"the import folder"``).
    wait : bool
        False: raise :class:`FolderLockedError` at once when another process holds the lock.
        True: wait until it is released (logged once, with the holder's pid).
    timeout_s : float, optional
        With ``wait``, give up after this many seconds (FolderLockedError); None waits for as
        long as it takes.
    lock_file : path, optional
        The lock file; default ``folder / LOCK_NAME``.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    FolderLockedError
        Another process holds the lock (``wait=False``, or ``timeout_s`` passed); the message
        names the folder and the holder's pid.

    Examples
    --------
    >>> with folder_lock("reports/run1", "the run folder"):  # doctest: +SKIP
    ...     ...  # nothing else writes into reports/run1 meanwhile
    """
    folder = Path(folder)
    lock_path = Path(lock_file) if lock_file is not None else folder / LOCK_NAME
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    if lock_file is None:
        folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(lock_path)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None and held[2] == os.getpid():
            held[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield lock_path
        finally:
            with _HELD_GUARD:
                _HELD[key][1] -= 1
        return
    fd = _acquire(lock_path, folder, what, wait, timeout_s)
    if fd is None:
        yield lock_path
        return
    try:
        with _HELD_GUARD:
            _HELD[key] = [fd, 1, os.getpid()]
        try:
            yield lock_path
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            # Removed while still held: a process waiting on this file then finds it gone
            # once it gets the lock and takes the new one (_acquire), so no two hold it.
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
    finally:
        os.close(fd)  # releases the flock


def _describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    return (f"process {holder['pid']}"
            + (f" on {holder['host']}" if holder.get("host") not in
               (None, socket.gethostname()) else "")
            + (f", since {holder['since']}" if holder.get("since") else ""))


def _acquire(lock_path: Path, folder: Path, what: str, wait: bool,
             timeout_s: float | None) -> int | None:
    """Lock ``lock_path`` (see :func:`folder_lock`); return its fd, None when unlockable."""
    import fcntl

    start, told = time.monotonic(), False
    while True:
        fd = _open_lock_file(lock_path)
        if fd is None:
            return None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _read_holder(fd)
                    by = _describe_holder(holder)
                    if not wait or (timeout_s is not None
                                    and time.monotonic() - start >= timeout_s):
                        raise FolderLockedError(
                            f"{what} {folder} is in use by {by} (lock file {lock_path}); "
                            f"wait until that process has finished, or use another folder",
                            folder, lock_path, holder) from None
                    if not told:
                        logger.info("waiting for %s, which holds %s %s", by, what, folder)
                        told = True
                    time.sleep(_LOCK_POLL_S)
            # The previous holder removes the file before it lets go: a lock on a file no
            # longer at lock_path guards nothing, so start again with the current one.
            try:
                here = os.stat(lock_path)
            except FileNotFoundError:
                here = None
            mine = os.fstat(fd)
            if here is None or (here.st_dev, here.st_ino) != (mine.st_dev, mine.st_ino):
                os.close(fd)
                continue
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "since": time.strftime("%Y-%m-%d %H:%M:%S")}
            with contextlib.suppress(OSError):  # a read-only descriptor: holder anonymous
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            return fd
        except BaseException:
            os.close(fd)
            raise
