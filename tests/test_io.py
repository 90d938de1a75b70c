"""Atomic writes, owned temporary folders and their cleanup (parotidlib.io)."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

import parotidlib.io as io_module
from parotidlib.io import (
    OWNER_FILE,
    atomic_path,
    make_temp_dir,
    release_temp_dir,
    remove_stale_temp_dirs,
    write_text_atomic,
)


def test_success_replaces_and_failure_keeps_the_old_content(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]
    write_text_atomic(target, "second")
    assert target.read_text() == "second"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755),
                                                          (0o077, 0o600, 0o700),
                                                          (0o002, 0o664, 0o775)])
def test_outputs_honour_the_umask(tmp_path, umask, mask, file_mode, folder_mode):
    umask(mask)
    assert mode(write_text_atomic(tmp_path / "a.txt", "x")) == file_mode
    with atomic_path(tmp_path / "b.bin") as tmp:
        assert mode(tmp) == file_mode  # already while it is written
        with open(tmp, "wb") as handle:
            handle.write(b"y")
    assert mode(tmp_path / "b.bin") == file_mode
    folder = make_temp_dir(tmp_path, ".data.tmp-")
    assert mode(folder) == folder_mode
    release_temp_dir(folder)
    os.replace(folder, tmp_path / "data")
    assert mode(tmp_path / "data") == folder_mode


def test_temp_dir_names_its_owner_until_released(tmp_path):
    folder = make_temp_dir(tmp_path, ".cohort.", ".partial")
    assert folder.parent == tmp_path and folder.name.startswith(".cohort.")
    assert folder.name.endswith(".partial") and len(folder.name) == len(".cohort..partial") + 8
    owner = json.loads((folder / OWNER_FILE).read_text())
    assert owner["pid"] == os.getpid() and owner["host"]
    assert remove_stale_temp_dirs(tmp_path, ".cohort.", ".partial") == []  # ours: alive
    release_temp_dir(folder)
    assert list(folder.iterdir()) == []
    release_temp_dir(folder)  # twice is fine


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftover(folder, age_s=0.0, **owner):
    """A leftover temporary folder with some content; an owner file unless owner is None."""
    folder.mkdir()
    (folder / "part.npy").write_bytes(b"half")
    if owner.get("pid") is not None:
        record = {**io_module._owner_record(), "start": None, **owner}
        (folder / OWNER_FILE).write_text(json.dumps(record))
    if age_s:
        then = time.time() - age_s
        for path in (*folder.iterdir(), folder):
            os.utime(path, (then, then))
    return folder


def test_only_leftovers_of_dead_runs_are_removed(tmp_path):
    day = 86400.0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = io_module._owner_record()
        gone = [
            leftover(tmp_path / ".d.tmp-deadbeef", pid=dead_pid()),
            leftover(tmp_path / ".d.tmp-abcdefgh", age_s=2 * day),  # no owner file, old
            leftover(tmp_path / ".d.tmp-otherold", age_s=2 * day, pid=1, host="elsewhere"),
        ]
        if me["boot_id"] and me["start"]:  # Linux: /proc tells boots and process starts
            gone += [
                leftover(tmp_path / ".d.tmp-rebooted", pid=os.getpid(), boot_id="another"),
                # the pid now belongs to a process started later than the folder's owner
                leftover(tmp_path / ".d.tmp-reused00", pid=os.getpid(), start="1"),
            ]
        kept = [
            leftover(tmp_path / ".d.tmp-mine0000", pid=os.getpid(), start=me["start"]),
            leftover(tmp_path / ".d.tmp-child000", pid=child.pid),  # live, even if old
            leftover(tmp_path / ".d.tmp-childold", age_s=2 * day, pid=child.pid),
            leftover(tmp_path / ".d.tmp-young000", age_s=3600.0),  # no owner file, recent
            leftover(tmp_path / ".d.tmp-otherhst", pid=dead_pid(), host="elsewhere"),
            leftover(tmp_path / ".d.tmp-deadbeefX", pid=dead_pid()),  # not a temporary name
            leftover(tmp_path / ".e.tmp-deadbeef", pid=dead_pid()),  # another folder's
        ]
        (tmp_path / ".d.tmp-file0000").write_text("a file, not a folder")
        (tmp_path / ".d.tmp-link0000").symlink_to(gone[0])
        removed = remove_stale_temp_dirs(tmp_path, ".d.tmp-")
        assert sorted(removed) == sorted(gone)
        assert not any(p.exists() for p in gone)
        assert all((p / "part.npy").read_bytes() == b"half" for p in kept)
        assert (tmp_path / ".d.tmp-file0000").is_file()
        assert (tmp_path / ".d.tmp-link0000").is_symlink()
        # a recent folder of unknown owner goes once it has not changed for max_age_s
        assert remove_stale_temp_dirs(tmp_path, ".d.tmp-", max_age_s=60.0) == \
            [tmp_path / ".d.tmp-young000"]
    finally:
        child.kill()
        child.wait()
    assert remove_stale_temp_dirs(tmp_path / "missing", ".d.tmp-") == []


def test_a_live_run_changing_its_folder_is_not_stale(tmp_path):
    # no owner file (an earlier version of the kit), but a file inside changed recently
    folder = leftover(tmp_path / ".d.tmp-oldest00", age_s=2 * 86400.0)
    (folder / "parts").mkdir()
    (folder / "parts" / "000001.npy").write_bytes(b"new")
    then = time.time() - 2 * 86400.0
    os.utime(folder, (then, then))
    os.utime(folder / "parts", (then, then))
    assert remove_stale_temp_dirs(tmp_path, ".d.tmp-") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc process states")
def test_a_leftover_of_an_unreaped_dead_process_is_removed(tmp_path):
    """A killed kernel can stay a zombie (exited, not reaped): os.kill(pid, 0) still
    succeeds on it, but it holds nothing, so its folder is a leftover."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while not io_module._is_zombie(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # exited; not waited for, so a zombie
    try:
        assert io_module._is_zombie(child.pid)
        os.kill(child.pid, 0)  # what the liveness check alone would call alive
        folder = leftover(tmp_path / ".d.tmp-zombie00", pid=child.pid,
                          start=io_module._process_start(child.pid))
        assert remove_stale_temp_dirs(tmp_path, ".d.tmp-") == [folder]
    finally:
        child.wait()
    assert not io_module._is_zombie(os.getpid())


# --------------------------------------------------------------------------- folder locks

_HOLD = ("import sys, time\n"
         "from parotidlib.io import folder_lock\n"
         "with folder_lock(sys.argv[1], 'the test folder'):\n"
         "    print('locked', flush=True)\n"
         "    time.sleep(float(sys.argv[2]))\n")


def _holder(folder, seconds=60.0):
    """A real process holding the lock of ``folder`` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_folder_is_refused_at_once_naming_the_holder(tmp_path):
    from parotidlib.io import LOCK_NAME, FolderLockedError, folder_lock

    proc = _holder(tmp_path / "f")
    try:
        start = time.monotonic()
        with pytest.raises(FolderLockedError) as err:
            with folder_lock(tmp_path / "f", "the run folder"):
                pass
        assert time.monotonic() - start < 5
        assert f"process {proc.pid}" in str(err.value)
        assert str(tmp_path / "f") in str(err.value) and "the run folder" in str(err.value)
        assert err.value.holder["pid"] == proc.pid
        with pytest.raises(FolderLockedError, match=f"process {proc.pid}"):
            with folder_lock(tmp_path / "f", wait=True, timeout_s=0.3):
                pass
    finally:
        proc.kill()
        proc.wait()
    # kill -9 leaves no stale lock: the kernel released it with the process
    with folder_lock(tmp_path / "f") as lock:
        assert lock == tmp_path / "f" / LOCK_NAME
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with folder_lock(tmp_path / "f"):  # re-entrant within the process
            pass
        assert lock.is_file()
        # still held after the inner block: another process is refused
        probe = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom parotidlib.io import folder_lock\n"
             "try:\n    with folder_lock(sys.argv[1]): pass\n"
             "except RuntimeError as e:\n    print(e)\n", str(tmp_path / "f")],
            capture_output=True, text=True, timeout=60)
        assert f"process {os.getpid()}" in probe.stdout
    assert list((tmp_path / "f").iterdir()) == []  # the holder removes its lock file


def test_waiters_on_a_removed_lock_file_never_hold_it_together(tmp_path):
    """Processes that wait while the holder removes the lock file take turns on the new one:
    each appends its start and end to a log, and no two intervals overlap."""
    log = tmp_path / "log.txt"
    code = ("import os, sys, time\n"
            "from parotidlib.io import folder_lock\n"
            "for _ in range(5):\n"
            "    with folder_lock(sys.argv[1], wait=True, timeout_s=60):\n"
            "        with open(sys.argv[2], 'a') as fh: fh.write(f'in {os.getpid()}\\n')\n"
            "        time.sleep(0.02)\n"
            "        with open(sys.argv[2], 'a') as fh: fh.write(f'out {os.getpid()}\\n')\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "f"), str(log)])
             for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    lines = log.read_text().split()
    assert len(lines) == 2 * 2 * 5 * 3
    events = list(zip(lines[::2], lines[1::2], strict=True))
    for enter, leave in zip(events[::2], events[1::2], strict=True):
        assert enter[0] == "in" and leave == ("out", enter[1])


def test_a_waiting_lock_gets_the_folder_when_the_holder_ends(tmp_path):
    from parotidlib.io import folder_lock

    proc = _holder(tmp_path / "f", seconds=1.0)
    try:
        start = time.monotonic()
        with folder_lock(tmp_path / "f", wait=True, timeout_s=60) as lock:
            waited = time.monotonic() - start
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert 0.5 < waited < 30  # the holder kept it for 1 s after it said so
    finally:
        proc.kill()
        proc.wait()


def test_a_read_only_folder_runs_unlocked(tmp_path, monkeypatch):
    """Where the lock file can be neither created nor opened, nothing can be written either:
    the block runs unlocked (a finished run looked up in a read-only reports folder)."""
    import errno

    from parotidlib.io import folder_lock

    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(io_module.os, "open", read_only)
    with folder_lock(tmp_path / "ro"):
        pass
    assert list((tmp_path / "ro").iterdir()) == []


def test_a_full_disk_names_the_file_being_written(tmp_path):
    """A write error names no file ("[Errno 28] No space left on device"): atomic_path adds
    the destination (injected ENOSPC; the file keeps its old content)."""
    import errno

    target = tmp_path / "report.html"
    write_text_atomic(target, "old")
    with pytest.raises(OSError) as err:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert err.value.errno == errno.ENOSPC and str(target) in str(err.value)
    assert target.read_text() == "old"
