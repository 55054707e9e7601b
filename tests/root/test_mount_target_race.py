"""CVE-2021-30465: a mount target inside the rootfs that another process keeps swapping between a
directory and a symlink (two containers sharing a volume) must never get the mount outside the
root. libcontainer makes and opens the mount point by descriptors inside the root and mounts onto
/proc/self/fd/N (``mounts.mount_one(..., root=...)``). The path-string way it replaced (resolve,
then make the directory and mount by name: ``mount_one(m, dest)``) loses this race: in 400 tries
the mount, and a directory made for it, landed in the directory outside the root (measured on
this machine).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.libcontainer import kernel
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.mounts import mount_one
from berth.libcontainer.securepath import resolve_in_root
from berth.libcontainer.spec import Mount

TRIES = 400


@pytest.fixture
def tree() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="bh-race-", dir="/tmp"))
    try:
        for d in ("root/vol/a", "outside", "src"):
            (base / d).mkdir(parents=True)
        (base / "src" / "marker").write_text("volume\n")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


_libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _flip(a: Path, outside: Path, stop: threading.Event) -> None:
    """Swap ``a`` between a directory and a symlink leading out of the root, atomically and as
    fast as it goes (renameat2 RENAME_EXCHANGE with a sibling symlink)."""
    link = a.with_name("a.link")
    os.symlink(str(outside), link)
    one, other = bytes(a), bytes(link)
    while not stop.is_set():
        _libc.renameat2(AT_FDCWD, one, AT_FDCWD, other, RENAME_EXCHANGE)


def _race(root: Path, src: Path, safe: bool) -> list[str]:
    """In a child with a private mount namespace: mount ``src`` at /vol/a/b TRIES times; the mount
    points that ended up outside ``root``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            kernel.unshare(kernel.CLONE_NEWNS)
            kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE, None)
            m = Mount("bind", str(src), "/vol/a/b", ("rbind",))
            made = 0
            for _ in range(TRIES):  # the mounts stay (stacked): the namespace goes with the child
                try:
                    dest = resolve_in_root(str(root), m.target)
                    mount_one(m, dest, root=str(root)) if safe else mount_one(m, dest)
                    made += 1
                except (OSError, ContainerInitError):
                    continue  # a lost race may fail a mount: only where mounts land counts
            with open("/proc/self/mountinfo") as f:
                points = [line.split()[4] for line in f if line.split()[3] == str(src)]
            escaped = [p for p in points if not p.startswith(str(root) + "/")]
            os.write(w, "\n".join([str(made), *escaped]).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    made, *escaped = out.decode().split("\n")
    assert int(made) > TRIES // 4, f"only {made} of {TRIES} mounts were made: the race test tested nothing"
    return escaped


def test_a_swapped_mount_target_never_leads_outside_the_root(tree: Path) -> None:
    stop = threading.Event()
    flipper = threading.Thread(target=_flip, args=(tree / "root/vol/a", tree / "outside", stop), daemon=True)
    flipper.start()
    try:
        escaped = _race(tree / "root", tree / "src", safe=True)
    finally:
        stop.set()
        flipper.join()
    assert escaped == []
    assert not (tree / "outside" / "b").exists() or not any((tree / "outside" / "b").iterdir())
