"""Where a shim's memory goes: N real containers through NativeDriver (as tests/root/test_native.py
runs them), then each monitor's PSS and, for one of them, its pages compared with the fork server's.

    sudo .venv/bin/python bench/shimmem.py [--n 20] [--detail] [--objects]

Prints the load average and the monitors' PSS (median, min, max). ``--detail``: per mapping (heap,
pymalloc arenas, libpython's data ...) one monitor's PSS and private dirty, and how many of its
pages are the fork server's own frames (shared), copies of them (written since the fork: identical
again, or changed) or new. ``--objects``: each copied page by kind -- in a pymalloc pool (16 KiB,
its header read from the fork server's memory): its block size, the type of most of its live
objects, and whether the monitor allocated into a block that is free in the fork server ("alloc
in a hole"); in the C heap (glibc's chunks walked): the objects in it (code objects by name);
in a library's data: the symbols there -- and the changed words by the object they are in.
``SHIMMEM_DUMP=1`` prints a few changed C-heap pages word by word. Root (pagemap's frames).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import signal
import struct
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from berth.drivers.exec import CreateRequest, NativeDriver, SpecInput, build_spec  # noqa: E402
from berth.libcontainer import Mount  # noqa: E402
from berth.libcontainer.cgroups import Resources, open_cgroup  # noqa: E402
from berth.libcontainer.testing import busybox_rootfs  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def request(base: Path, lower: Path, parent: str) -> CreateRequest:
    cid = uuid.uuid4().hex
    cdir = base / cid[:12]
    for d in ("rootfs", "upper", "work"):
        (cdir / d).mkdir(parents=True)
    rootfs = str(cdir / "rootfs")
    spec = build_spec(SpecInput(args=("sleep", "100"), rootfs=rootfs, tty=False, hostname=cid[:12],
                                resources=Resources(), cgroups_path=f"{parent}/{cid}"))
    opts = (f"lowerdir={lower}", f"upperdir={cdir / 'upper'}", f"workdir={cdir / 'work'}")
    return CreateRequest(id=cid, bundle=cdir, spec=spec, rootfs_mounts=[Mount("overlay", "overlay", rootfs, opts)],
                         tty=False, open_stdin=False, log_path=cdir / "json.log")


def rollup(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def mappings(pid: int) -> list[tuple[int, int, str, dict[str, int]]]:
    maps: list[tuple[int, int, str, dict[str, int]]] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                name = parts[5] if len(parts) > 5 else "[anon]"
                maps.append((lo, hi, f"{name} {parts[1]}", {}))
            elif len(parts) == 3 and parts[2] == "kB":
                maps[-1][3][parts[0].rstrip(":")] = int(parts[1])
    return maps


def frames(pid: int, lo: int, hi: int) -> list[int]:
    """Page frame numbers (0: not present) of [lo, hi)."""
    n = (hi - lo) // PAGE
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(lo // PAGE * 8)
        raw = f.read(n * 8)
    out = []
    for (entry,) in struct.iter_unpack("Q", raw):
        out.append(entry & ((1 << 55) - 1) if entry >> 63 else 0)
    return out


class Mem:
    def __init__(self, pid: int) -> None:
        self.f = open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115

    def read(self, addr: int, n: int) -> bytes:
        if not 0 < addr < 1 << 47:
            return b""
        try:
            return os.pread(self.f.fileno(), n, addr)
        except OSError:
            return b""

    def word(self, addr: int) -> int:
        b = self.read(addr, 8)
        return struct.unpack("Q", b)[0] if len(b) == 8 else 0

    def cstr(self, addr: int, n: int = 60) -> str:
        b = self.read(addr, n)
        return b.split(b"\0", 1)[0].decode("ascii", "replace")


def type_name(mem: Mem, obj: int, cache: dict[int, str]) -> str:
    tp = mem.word(obj + 8)
    if tp not in cache:
        name_ptr = mem.word(tp + 24) if tp else 0
        cache[tp] = mem.cstr(name_ptr) if name_ptr else "?"
    return cache[tp]


POOL = 16 << 10  # pymalloc's pools on 64-bit 3.11 (its arenas: 1 MiB)


def pool_block_size(mem: Mem, addr: int) -> tuple[int, int]:
    """(block size, pool start) if ``addr`` is in a pymalloc pool (its header is consistent), else 0s."""
    pool = addr & ~(POOL - 1)
    head = mem.read(pool + 36, 12)
    if len(head) < 12:
        return 0, 0
    szidx, nextoffset, maxnext = struct.unpack("III", head)
    size = (szidx + 1) * 16
    if szidx < 32 and maxnext == POOL - size and 48 <= nextoffset <= POOL:
        return size, pool
    return 0, 0


def _typeish(mem: Mem, obj: int, cache: dict[int, str]) -> str:
    name = type_name(mem, obj, cache)
    return name if name and name.replace("_", "a").replace(".", "a").isalnum() else ""


def object_kind(mem: Mem, block: int, word: int, cache: dict[int, str]) -> str:
    """The type of the object in the pymalloc block at ``block`` and where ``word`` is in it."""
    t = _typeish(mem, block, cache)
    if t:
        return f"{t}+{word - block}"
    t = _typeish(mem, block + 16, cache)
    if t:
        return f"{t}+{word - block - 16}" + (" gc" if word - block - 16 >= 0 else "")
    return "(free or unknown)"


def walk_heap(mem: Mem, lo: int, hi: int) -> list[tuple[int, int]]:
    """glibc's chunks in the main heap: (address, size), in order."""
    out = []
    c = lo
    while c + 16 <= hi:
        size = mem.word(c + 8) & ~7
        if size < 32 or c + size > hi:
            break
        out.append((c, size))
        c += size
    return out


def chunk_kind(mem: Mem, chunk: int, size: int, cache: dict[int, str]) -> str:
    user = chunk + 16
    for start in (user, user + 16):
        t = _typeish(mem, start, cache)
        if t:
            if t == "type":  # a heap type (an instance taking a reference to it): which one
                return f"type:{mem.cstr(mem.word(start + 24))}"
            return f"{t}" + (f":{code_name(mem, start)}" if t == "code" and CODE_NAME_OFFSET else "")
    if size > 20000 and DUMP:
        print(f"raw chunk {chunk:x} size {size}: " + mem.read(user, 64).hex())
    return f"raw{size}"


def free_blocks(mem: Mem, pool: int, size: int) -> set[int]:
    """Indexes of the blocks free in a pool: on its free list, or past ``nextoffset``."""
    head = mem.read(pool, 48)
    freeblock = struct.unpack_from("Q", head, 8)[0]
    nextoffset = struct.unpack_from("I", head, 40)[0]
    free = set(range((nextoffset - 48) // size, (POOL - 48) // size))
    seen = 0
    while freeblock and pool <= freeblock < pool + POOL and seen < 2000:
        free.add((freeblock - pool - 48) // size)
        freeblock = mem.word(freeblock)
        seen += 1
    return free


_SYMS: dict[str, list[tuple[int, str]]] = {}


def lo_of(name: str, maps: list[tuple[int, int, str, dict[str, int]]]) -> int:
    """The load base of a mapped file: its lowest mapping."""
    path = name.split()[0]
    return min((lo for lo, _hi, n, _ in maps if n.split()[0] == path), default=0)


def symbol_at(base: int, addr: int, name: str) -> str:
    import bisect
    import subprocess

    path = name.split()[0]
    if not path.startswith("/"):
        return ""
    if path not in _SYMS:
        out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
        out += subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True).stdout
        syms = sorted({(int(p[0], 16), p[2]) for p in (line.split() for line in out.splitlines()) if len(p) == 3})
        _SYMS[path] = syms
    syms = _SYMS[path]
    rel = addr - base
    i = bisect.bisect_right(syms, (rel + PAGE, "")) - 1
    names = []
    while i >= 0 and syms[i][0] >= rel - 4096 * 16 and len(names) < 3:
        if syms[i][0] < rel + PAGE:
            names.append(syms[i][1])
            if syms[i][0] <= rel:
                break
        i -= 1
    return ",".join(reversed(names))


def str_value(mem: Mem, obj: int) -> str:
    state = mem.word(obj + 32) & 0xFFFFFFFF
    length = mem.word(obj + 16)
    compact, ascii_ = state >> 5 & 1, state >> 6 & 1
    if compact and ascii_ and length < 200:
        return mem.read(obj + 48, length).decode("ascii", "replace")
    return f"<str len {length}>"


CODE_NAME_OFFSET = 0
DUMP = bool(os.environ.get("SHIMMEM_DUMP"))


def code_name(mem: Mem, obj: int) -> str:
    name = mem.word(obj + CODE_NAME_OFFSET)
    qual = mem.word(obj + CODE_NAME_OFFSET + 8)
    return str_value(mem, qual or name)


def _code_name_offset() -> int:
    import ctypes

    def f() -> None: ...

    code = f.__code__
    code.replace(co_qualname="zzqualname")
    target = id(code.co_name)
    base = id(code)
    for off in range(0, 256, 8):
        if ctypes.c_uint64.from_address(base + off).value == target:
            return off
    return 0


def analyse(mon: int, server: int, objects: bool) -> None:
    mon_maps = mappings(mon)
    srv_maps = {(lo, hi): name for lo, hi, name, _ in mappings(server)}
    print(f"{'mapping':60} {'pss':>6} {'privD':>6} {'rss':>6}  shared copied(same/changed) new")
    totals = collections.Counter()
    mm, sm = Mem(mon), Mem(server)
    hist: collections.Counter[str] = collections.Counter()
    pages_by_type: dict[str, set[int]] = collections.defaultdict(set)
    strs: collections.Counter[str] = collections.Counter()
    codes: collections.Counter[str] = collections.Counter()
    tcache: dict[int, str] = {}
    dump: dict[int, list[tuple[int, int, int]]] = {}
    page_kinds: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
    heap_chunks: list[tuple[int, int]] | None = None
    for lo, hi, name, kb in mon_maps:
        mf = frames(mon, lo, hi)
        sf = frames(server, lo, hi) if any(lo >= a and hi <= b for a, b in srv_maps) else [0] * len(mf)
        shared = same = changed = new = 0
        for i, (a, b) in enumerate(zip(mf, sf, strict=True)):
            if not a:
                continue
            if a == b:
                shared += 1
                continue
            if not b:
                new += 1
                continue
            addr = lo + i * PAGE
            x, y = mm.read(addr, PAGE), sm.read(addr, PAGE)
            if x == y:
                same += 1
            else:
                changed += 1
            if objects and len(x) == len(y) == PAGE:
                kinds = set()
                pool, pool_start = pool_block_size(sm, addr)
                if pool:
                    free = free_blocks(sm, pool_start, pool)
                    hit = any(x[o:o + 8] != y[o:o + 8] and (addr + o - pool_start - 48) // pool in free
                              for o in range(0, PAGE, 8) if addr + o - pool_start >= 48)
                    live = collections.Counter(object_kind(sm, b, b, tcache).split("+")[0]
                                               for b in range(pool_start + 48, pool_start + POOL - pool + 1, pool)
                                               if b // PAGE == addr // PAGE
                                               and (b - pool_start - 48) // pool not in free)
                    top = live.most_common(1)[0][0] if live else "-"
                    page_kinds[("pool", "same" if x == y else "changed", "alloc in a hole" if hit else "",
                                f"{pool}B {top}")] += 1
                elif "[heap]" in name:
                    if heap_chunks is None:
                        heap_chunks = walk_heap(sm, lo, hi)
                    import bisect
                    objs = collections.Counter()
                    for o in range(0, PAGE, 8):
                        if x[o:o + 8] != y[o:o + 8] or x == y:
                            i = bisect.bisect_right(heap_chunks, (addr + o, 1 << 62)) - 1
                            if i >= 0:
                                c, size = heap_chunks[i]
                                objs[f"{chunk_kind(sm, c, size, tcache)}"] += 1
                    top = ",".join(k for k, _ in objs.most_common(2))
                    page_kinds[("[heap]", "same" if x == y else "changed", "", top)] += 1
                else:
                    page_kinds[(name.split()[0].rsplit("/", 1)[-1], "same" if x == y else "changed",
                                symbol_at(lo_of(name, mon_maps), addr, name), "")] += 1
                for off in range(0, PAGE, 8):
                    if x[off:off + 8] == y[off:off + 8]:
                        continue
                    if pool:
                        rel = addr + off - pool_start
                        if rel < 48:
                            kind = "(pool header)"
                        else:
                            start = pool_start + 48 + (rel - 48) // pool * pool
                            kind = object_kind(sm, start, addr + off, tcache)
                            before, after = kind, object_kind(mm, start, addr + off, tcache)
                            if before != after:
                                kind = f"{before} -> {after}"
                            if kind.startswith("str+0"):
                                strs[str_value(sm, start + (16 if "gc" in kind else 0))] += 1
                            elif kind.startswith("code+") and CODE_NAME_OFFSET:
                                codes[code_name(sm, start)] += 1
                    else:
                        va, vb = struct.unpack_from("q", x, off)[0], struct.unpack_from("q", y, off)[0]
                        if DUMP and "[heap]" in name:
                            dump.setdefault(addr, []).append((off, vb, va))
                        if 0 < va < 1 << 32 and 0 < vb < 1 << 32 and abs(va - vb) < 1000:
                            kind = f"{name.split()[0].rsplit('/', 1)[-1]}: {type_name(sm, addr + off, tcache)}+0?"
                            if kind.endswith(" type+0?"):
                                kind = kind[:-3] + ":" + sm.cstr(sm.word(addr + off + 24)) + "+0?"
                            if kind.endswith(" code+0?") and CODE_NAME_OFFSET:
                                codes[code_name(sm, addr + off)] += 1
                        else:
                            kind = f"{name.split()[0].rsplit('/', 1)[-1]}: other"
                    hist[kind] += 1
                    kinds.add(kind)
                for t in kinds:
                    pages_by_type[t].add(addr)
                if x == y:
                    pages_by_type["(same again)"].add(addr)
        totals.update(pss=kb.get("Pss", 0), priv=kb.get("Private_Dirty", 0), shared=shared, same=same,
                      changed=changed, new=new)
        if kb.get("Pss", 0) >= 8:
            print(f"{name[-60:]:60} {kb.get('Pss', 0):6} {kb.get('Private_Dirty', 0):6} {kb.get('Rss', 0):6}  "
                  f"{shared:6} {same:6}/{changed:<6} {new:5}")
    print(f"{'total':60} {totals['pss']:6} {totals['priv']:6} {'':6}  {totals['shared']:6} "
          f"{totals['same']:6}/{totals['changed']:<6} {totals['new']:5}")
    if objects:
        print("\nchanged words by the object they are in (words; pages holding one)")
        for t, n in hist.most_common(80):
            print(f"  {t:40} {n:6} {len(pages_by_type[t]):5}")
        print(f"  pages identical again: {len(pages_by_type['(same again)'])}")
        print("\ncopied pages by kind")
        for k, n in sorted(page_kinds.items(), key=lambda kv: (kv[0][0], -kv[1])):
            print(f"  {n:4}  {' | '.join(k)}")
        for page, words in list(dump.items())[:12]:
            print(f"heap page {page:x}: {len(words)} words changed:",
                  " ".join(f"+{o}:{b:x}->{a:x}" for o, b, a in words[:24]))
        print("\nstr:", ", ".join(f"{s!r}" for s, _ in strs.most_common(300)))
        print("\ncode:", ", ".join(f"{s}" for s, _ in codes.most_common(400)))


def children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


async def main() -> None:
    global CODE_NAME_OFFSET
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--detail", action="store_true")
    ap.add_argument("--objects", action="store_true")
    ap.add_argument("--hold", type=float, default=0.0, help="seconds to keep the containers running at the end")
    args = ap.parse_args()
    CODE_NAME_OFFSET = _code_name_offset()
    tag = uuid.uuid4().hex[:10]
    base = Path(tempfile.mkdtemp(prefix="shimmem-"))
    exec_root, parent = Path(f"/run/bt-{tag}"), f"berth-test-{tag}"
    lower = busybox_rootfs(base / "lower")
    driver = NativeDriver(exec_root, parent)
    await driver.startup()
    reqs, handles = [], []
    try:
        for _ in range(args.n):
            req = request(base, lower, parent)
            h = await driver.create(req)
            await h.start()
            reqs.append(req)
            handles.append(h)
        await asyncio.sleep(0.5)
        pss = [rollup(h.monitor_pid) for h in handles]
        vals = sorted(p["Pss"] for p in pss)
        print(f"load {os.getloadavg()[0]:.2f}; monitor PSS kB: median {vals[len(vals) // 2]} min {vals[0]} "
              f"max {vals[-1]}; private dirty median {sorted(p['Private_Dirty'] for p in pss)[len(pss) // 2]}")
        server = driver._proc.pid if driver._proc else 0
        helpers = children(server)
        print(f"fork server {server}: PSS {rollup(server)['Pss']} kB, private dirty "
              f"{rollup(server)['Private_Dirty']}; its children {[(c, rollup(c)['Pss']) for c in helpers]}")
        if args.detail or args.objects:
            analyse(handles[len(handles) // 2].monitor_pid, server, args.objects)
        if args.hold:
            await asyncio.sleep(args.hold)
    finally:
        for req, h in zip(reqs, handles, strict=True):
            await h.signal(signal.SIGKILL)
            await h.wait()
            await driver.cleanup(req.id)
        await driver.shutdown()
        for path in open_cgroup(parent).paths():
            if path.is_dir():
                path.rmdir()
        shutil.rmtree(exec_root, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
