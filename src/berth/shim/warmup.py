"""Warming the fork server up: the shim's hot code runs here once, before ``gc.freeze()`` and fork.

Python 3.11 rewrites bytecode as it specialises it ("quickening") and fills caches on first
use; done in the fork server, those writes land in pages every shim shares instead of in
private copies in each. :func:`fill_pool_holes` then makes a shim's own allocations go to
fresh, compact pages (docs/monitor.md has the numbers).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from berth.container.logs import LogWriter, format_time
from berth.libcontainer import Stdio
from berth.shim import protocol as P
from berth.shim.native import NativeRuntime
from berth.shim.process import exit_code_of
from berth.shim.runtime import Op
from berth.shim.statefiles import write_state

PR_SET_CHILD_SUBREAPER = 36


def warm_up(rounds: int = 64) -> None:
    """Run the shim's hot pure code in the fork server, before gc.freeze() and fork.

    Python 3.11 rewrites bytecode as it specialises it ("quickening") and fills caches on
    first use; done here once, those writes land in pages every shim shares instead of
    in private copies in each shim.
    """
    req = {"op": "create", "id": "x" * 64, "spec": {"process": {"args": ["sh"], "env": ["A=b"]}, "n": [1, 2]}}
    tmp = f"/dev/shm/berth-warm-{os.getpid()}"  # tempfile would import random, shutil, bz2, lzma...
    os.mkdir(tmp, 0o700)
    try:
        log = LogWriter(os.devnull)
        ep = select.epoll()
        r, w = os.pipe()
        ep.register(r, select.EPOLLIN)
        try:
            for _ in range(rounds):
                dec = P.FrameDecoder()
                for kind, payload in dec.feed(P.encode_json(req) + P.encode(P.STDIN, b"data")):
                    if kind == P.CONTROL:
                        P.decode_json(payload)
                log.write(P.STDOUT, b"line one\npartial")
                log.write(P.STDERR, b"x" * 100 + b"\n")
                P.encode(P.STDOUT, b"out")
                os.write(w, b"x")
                for _fd, _mask in ep.poll(0):
                    os.read(r, 16)
                format_time(time.time_ns())
                P.decode_json(P.dumps({"event": "reply", "req": 1, "op": "start", "error": "", "kind": ""}))
                write_state(tmp, 1, 2, "")
                exit_code_of(0)
            log.close()
        finally:
            ep.close()
            os.close(r)
            os.close(w)
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def warm_service(rounds: int = 32) -> None:
    """Drive a container-less Service (output, stdin, requests) through the real reactor over
    pipes and a socketpair, so that its methods are specialised here, in pages every shim shares."""
    from berth.shim.process import RUNNING
    from berth.shim.reactor import Reactor
    from berth.shim.runtime import Done
    from berth.shim.service import Service
    from berth.shim.stdio import make_stdio

    class Idle:
        """A runtime whose container is already running: signals reach nobody."""

        def kill(self, pid: int, signum: int) -> Op:
            return Done()

    ours, peer = socket.socketpair()
    reactor = Reactor()
    service = Service({"id": "warm-up", "exec_root": "/nonexistent"}, ours, Idle(), reactor)  # type: ignore[arg-type]
    init = service.init
    stdio, child_fds = make_stdio(init, False, True)
    try:
        init.started, init.state = True, RUNNING
        init.conns.append(service.daemon)
        service._add_conn(service.daemon)
        service.pump.watch_outputs(init)
        for _ in range(rounds):
            os.write(stdio.stdout, b"hello\n")
            reactor.run_once()
            peer.recv(65536)
            peer.sendall(P.encode(P.STDIN, b"in\n") + P.encode_json({"op": "resize", "h": 1, "w": 1, "req": 1})
                         + P.encode_json({"op": "signal", "signal": 0, "req": 2}))
            reactor.run_once()
            os.read(stdio.stdin, 100)
            peer.recv(65536)
    finally:
        service.pump.close_all(init)
        for fd in child_fds:
            os.close(fd)
        reactor.close()
        ours.close()
        peer.close()
    warm_console(rounds)


def _answered(answer_obj: dict[str, object], close_after: bool = True) -> Op:
    """A helper that has answered already (forking one per operation would make the warm-up
    slow, and Helper.__init__ is the one part a shim runs only once anyway)."""
    from berth.shim.helper import Helper, HelperOp, answer

    helper = Helper.__new__(Helper)
    helper.res_r, res_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    helper.go_w = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    helper.pid = -1
    answer(res_w, answer_obj)
    os.close(res_w)
    return HelperOp(helper, close_after=close_after)


def _stand_in_create(lifeline: tuple[int, int], msg: dict[str, Any], data: bytes, fds: list[int], res_w: int,
                     go_r: int) -> None:
    """In the standby helper, what ``helper_create`` does without the kernel work: a stand-in
    init on the shim's report and barrier pipes, which reports its exec at the barrier byte and
    then runs until it is killed (or the rehearsal's lifeline closes)."""
    from berth.libcontainer.failure import READY
    from berth.shim.helper import answer

    given = iter(fds)
    for fd in msg["stdio"]:
        if fd >= 0:
            os.close(next(given))  # a stand-in writes nothing
    report_r, report_w, barrier_r, barrier_w = next(given), next(given), next(given), next(given)
    os.close(barrier_w)
    os.close(report_r)
    os.close(lifeline[1])
    pid = os.fork()
    if pid == 0:
        os.write(report_w, READY)  # straight to the shim, as a real init (berth.shim.native.CreateOp)
        if os.read(barrier_r, 1):
            os.close(report_w)  # "exec'd": the shim reads EOF
        os.read(lifeline[0], 1)  # until SIGKILL, or the end of the rehearsal
        os._exit(0)
    os.close(report_w)
    os.close(barrier_r)
    answer(res_w, {"pid": pid, "result": {"direct": True}})


def _rehearsal_runtime(root: str, cid: str, lifeline: tuple[int, int]) -> NativeRuntime:
    """berth's libcontainer runtime, of its own class, with stand-ins where the kernel work would
    be: its create (a standby helper given the work over a socket, the shim's report and barrier
    pipes), start (the barrier byte, the report's EOF), kill, state and delete run as in a shim;
    exec, pause and resume (helpers a shim forks) answer at once, as attributes of the instance.

    Not a subclass: the bytecode the rehearsal specialises then names NativeRuntime's type
    version, and the interpreter's attribute cache holds its lookups; on a subclass, every
    NativeRuntime method a shim ran missed both (the generic lookups rewrote ~20 of the cache's
    entries, the attribute names' references and the code's counters: pages of each shim's own)."""
    import functools

    from berth.shim.helper import Standby

    def exec_(process: dict[str, Any], stdio: Stdio) -> Op:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return _answered({"pid": pid})

    runtime = NativeRuntime({"id": cid, "exec_root": root, "cgroup": ""}, b"{}",
                            Standby(functools.partial(_stand_in_create, lifeline)))
    runtime.exec = exec_  # type: ignore[method-assign]
    runtime.pause = runtime.resume = lambda: _answered({})  # type: ignore[method-assign]
    return runtime


def warm_lifecycle(rounds: int = 8) -> None:
    """Run whole containers' lives on the rehearsal runtime: create, attach, exec, pause,
    resume, start, exit, through a Service on its reactor, in a scratch exec root."""
    import _signal  # type: ignore[import-not-found]

    from berth.libcontainer import kernel
    from berth.shim.reactor import Reactor
    from berth.shim.service import Service

    root = f"/dev/shm/berth-warm-{os.getpid()}"
    os.mkdir(root, 0o700)
    old = _signal.signal(17, lambda signum, frame: None)  # SIGCHLD: through the wakeup fd
    kernel.prctl(PR_SET_CHILD_SUBREAPER, 1)  # the stand-in inits are ours to reap, as a shim's
    lifeline = os.pipe2(os.O_CLOEXEC)  # closed at the end: no stand-in outlives the rehearsal
    try:
        for n in range(rounds):
            cid = f"rehearsal-{n}"
            os.mkdir(os.path.join(root, cid), 0o700)
            ours, peer = socket.socketpair()
            peer.settimeout(5)
            reactor = Reactor()
            req = {"id": cid, "exec_root": root, "open_stdin": True, "log_path": os.path.join(root, cid, "log")}
            service = Service(req, ours, _rehearsal_runtime(root, cid, lifeline), reactor)
            reactor.catch_signals(service.on_signals)
            service.create()
            client = None
            try:
                while service.listener is None and not service.finished:
                    reactor.run_once()
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.connect(os.path.join(root, cid, "monitor.sock"))
                client.sendall(P.encode_json({"op": "control"}))
                client.sendall(P.encode_json({"op": "start", "req": 0}))
                deadline = time.monotonic() + 5
                while not service.init.started and time.monotonic() < deadline:
                    reactor.run_once()
                requests = [P.encode_json({"op": op, "req": i, "signal": 0})
                            for i, op in enumerate(("pause", "resume", "signal", "start"))]
                client.sendall(b"".join(requests))
                peer.sendall(P.encode(P.STDIN, b"in") + P.encode(P.STDIN_EOF))
                replies, decoder = 0, P.FrameDecoder()
                client.setblocking(False)
                while replies < 5 and time.monotonic() < deadline:  # start, pause, resume, signal, start
                    reactor.run_once()
                    try:
                        replies += len(decoder.feed(client.recv(65536)))
                    except BlockingIOError:
                        pass
                execs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                execs.connect(os.path.join(root, cid, "monitor.sock"))
                execs.sendall(P.encode_json({"op": "exec", "process": {"args": ["x"]}, "stdin": True}))
                poller = select.poll()
                poller.register(execs, select.POLLIN)
                while not poller.poll(0) and time.monotonic() < deadline:
                    reactor.run_once()
                client.setblocking(True)
                client.sendall(P.encode_json({"op": "signal", "req": 9, "signal": 9}))
                while not service.finished and time.monotonic() < deadline:
                    reactor.run_once()
                execs.close()
            finally:
                if client is not None:
                    client.close()
                service.runtime.close()
                reactor.close()
                ours.close()
                peer.close()
    finally:
        for fd in lifeline:
            os.close(fd)
        _signal.signal(17, old)
        import signal

        signal.set_wakeup_fd(-1)
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        deadline = time.monotonic() + 2
        try:
            while time.monotonic() < deadline:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.001)
        except ChildProcessError:
            pass  # every child reaped
        kernel.prctl(PR_SET_CHILD_SUBREAPER, 0)


def warm_console(rounds: int) -> None:
    """The tty path: a console socket, a pty master sent over it (as the container's process
    does) and taken by the Process, so that a tty shim runs code warmed here too."""
    from berth.shim.process import Process
    from berth.shim.stdio import close_console, make_stdio, take_master

    for _ in range(rounds):
        sess = Process(True)
        stdio, child_fds = make_stdio(sess, True, True)
        master, slave = os.openpty()
        try:
            with socket.socket(fileno=os.dup(stdio.console_socket)) as sock:
                rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, master.to_bytes(4, sys.byteorder))
                sock.sendmsg([b"/dev/pts/0"], [rights])
            take_master(sess)
        finally:
            close_console(sess)
            for fd in (master, slave, *child_fds, sess.master):
                if fd >= 0:
                    os.close(fd)


_UNPACKED: list[object] = []  # the code objects pack_code replaced: kept, so they leave no holes


def run_code(rehearse: Callable[[], None]) -> list[types.CodeType]:
    """The code objects ``rehearse()`` runs (Python functions, nested ones too), in the order of
    their first call, through ``sys.setprofile``."""
    seen: dict[int, types.CodeType] = {}

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            seen.setdefault(id(frame.f_code), frame.f_code)

    sys.setprofile(profile)
    try:
        rehearse()
    finally:
        sys.setprofile(None)
    return list(seen.values())


def pack_code(prefix: str = "berth.", hot: list[types.CodeType] | tuple[()] = ()) -> int:
    """Give every function and method of the loaded ``prefix`` modules a copy of its code object
    (nested code too), made one after another; returns how many functions got one. ``hot``:
    code a shim runs (:func:`run_code` of a rehearsal), copied first, with that of any module:
    the standard library's too.

    A shim writes to every code object it runs (a call takes a reference to it, and 3.11 counts
    calls before it quickens), and so copies the page it is on. As unmarshalled at import, the
    code objects lie scattered among their names, constants and line tables, a page or so each;
    copied in one go they are packed, and those a shim runs share fewer pages; copied first
    (after :func:`fill_pool_holes`, so that they go to fresh pools, not into holes), the code a
    shim runs lies apart from the code it never runs. The originals stay referenced: freed,
    their holes would take a shim's new allocations onto shared pages. Run before the warm-ups,
    which then quicken the copies.
    Measured (tests/root/test_native.py's 20 monitors, medians of three interleaved runs):
    2394-2424 kB PSS -> 2324-2366 kB; packing every loaded module (the standard library's too)
    was worse, 2473-2496 kB: more code kept twice, little of it run by a shim.
    """
    import gc

    funcs: dict[int, types.FunctionType] = {}

    def add(obj: object) -> None:
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                add(part)
        elif isinstance(obj, types.FunctionType):
            funcs.setdefault(id(obj), obj)

    for name, module in sorted(sys.modules.items()):
        if not name.startswith(prefix) or module is None:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, type) and obj.__module__ == name:
                for member in list(vars(obj).values()):
                    add(member)
            elif getattr(obj, "__module__", None) == name:
                add(obj)

    def copy(code: types.CodeType) -> types.CodeType:
        consts = tuple(copy(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
        return code.replace(co_consts=consts)

    order = list(funcs.values())
    if hot:
        rank = {id(code): i for i, code in enumerate(hot)}
        # the standard library's functions a shim runs (socket's, json's, enum's ...) too
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType) and id(obj.__code__) in rank:
                funcs.setdefault(id(obj), obj)
        first = sorted((f for f in funcs.values() if id(f.__code__) in rank), key=lambda f: rank[id(f.__code__)])
        taken = {id(f) for f in first}
        order = first + [f for f in order if id(f) not in taken]
    copied: dict[int, types.CodeType] = {}  # a code object shared by several functions: one copy
    for func in order:
        code = func.__code__
        if id(code) not in copied:
            _UNPACKED.append(code)
            copied[id(code)] = copy(code)
        func.__code__ = copied[id(code)]
    if hot:
        _pack_functions({id(copied[id(code)]) for code in hot if id(code) in copied})
    return len(order)


def _pack_functions(hot: set[int]) -> int:
    """Replace the functions of modules and classes whose code is in ``hot`` (ids) with copies
    made one after another; returns how many. A call takes a reference to the function object
    too: as made at import, a shim's hot functions lie among all others (160-byte blocks, a few
    per page); copied, they share a few pages. Only the module and class entries are rebound:
    references held elsewhere (defaults, partials, registries) keep the original, which works
    as before (it is kept, as the original code objects are)."""
    new: dict[int, types.FunctionType] = {}

    def twin(func: types.FunctionType) -> types.FunctionType:
        if id(func) not in new:
            copy = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__,
                                      func.__closure__)
            copy.__kwdefaults__ = func.__kwdefaults__
            copy.__qualname__ = func.__qualname__
            copy.__module__ = func.__module__
            copy.__doc__ = func.__doc__
            copy.__annotations__ = func.__annotations__
            copy.__dict__.update(func.__dict__)
            _UNPACKED.append(func)
            new[id(func)] = copy
        return new[id(func)]

    def wanted(obj: object) -> bool:
        return isinstance(obj, types.FunctionType) and id(obj.__code__) in hot

    for _name, module in sorted(sys.modules.items()):
        if module is None:
            continue
        space = vars(module)
        for key, obj in list(space.items()):
            if wanted(obj):
                space[key] = twin(obj)
            elif isinstance(obj, type) and obj.__module__ == module.__name__:
                for attr, member in list(vars(obj).items()):
                    inner = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                    if not wanted(inner):
                        continue
                    replacement = twin(inner)  # type: ignore[arg-type]
                    try:
                        setattr(obj, attr, type(member)(replacement) if inner is not member else replacement)
                    except (TypeError, AttributeError):
                        pass  # a class that will not be changed keeps its function
    return len(new)


POOL_SIZE = 16 << 10  # pymalloc's pools on 64-bit CPython 3.10+ (its arenas: 1 MiB)
POOL_OVERHEAD = 48  # the pool header: a pool's first block is this far into it


def fill_pool_holes() -> list[object]:
    """Occupy every free block in pymalloc's partly used pools (block sizes 48-512); returns the
    fillers to keep.

    A monitor's new objects would otherwise land in those holes, scattered over hundreds of
    pages it shares with us, and copy each of them (4 KiB per small object). With the holes
    filled, its allocations go to fresh pools, a few compact pages of its own. pymalloc takes a
    fresh pool for a size class only once no partly used pool of that class has a free block; so
    each class is filled with bytes objects (a bytes object of length n is a (33 + n)-byte block;
    n >= 2 is never cached) until one is the only block of its pool (the pool header's count,
    read from /proc/self/mem), and that one is given back: its pool is empty again, not a hole.
    Nothing this function makes is freed, so it leaves no hole of its own: the list's item array
    is in the C heap from the start, the reading file and buffer are kept with the fillers, and
    only ints (``id``, ``seek``: 32-byte blocks, a class not filled) come and go meanwhile.
    """
    fillers: list[object] = [None] * 128  # 1 KiB: the item array grows in the C heap, not in pools
    keep = fillers.append
    count = bytearray(4)  # the pool header's first field: how many blocks of the pool are in use
    # seek + readinto allocate no block beside the filler (os.pread makes a bytes object,
    # os.preadv an 80-byte Py_buffer array)
    mem = open("/proc/self/mem", "rb", buffering=0)  # noqa: SIM115 -- kept (closed) with the fillers
    keep(count)
    keep(mem)
    size = 48  # no range(): its iterator would be a 48-byte block, freed at the end
    while size <= 512:
        n = size - 33
        while True:
            block = b"\0" * n
            mem.seek(id(block) & ~(POOL_SIZE - 1))
            mem.readinto(count)
            if count[0] == 1 and count[1] == 0 and count[2] == 0 and count[3] == 0:
                del block  # alone in a fresh pool: every older pool of this class is full
                break
            keep(block)
        size += 16
    mem.close()
    return fillers


def fill_heap_holes(rounds: int = 4) -> list[object]:
    """Occupy the free chunks (544 bytes or more) of the C heap (glibc's main arena, ``[heap]``);
    returns the fillers to keep.

    Objects above 512 bytes (code objects, dict tables, buffers) come from malloc, which serves a
    request from a free chunk before the top of the heap: a monitor's first such allocations
    would split the fork server's free chunks and copy those pages. The heap is walked chunk by
    chunk through /proc/self/mem (a chunk is free when the next one's PREV_INUSE bit is clear),
    read through one 64 KiB window made once and kept: a buffer the heap's size, freed, would
    raise glibc's mmap and trim thresholds, and the next one would stay in the heap, megabytes
    of pages every shim then shares. Each free chunk gets a bytes object of its exact size
    (malloc returns an exact fit first).
    """
    window = bytearray(64 << 10)
    fillers: list[object] = [window]
    for _ in range(rounds):
        lo = hi = 0
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                if line.rstrip().endswith(b"[heap]"):
                    start, end = line.split(None, 1)[0].split(b"-")
                    lo, hi = int(start, 16), int(end, 16)
        if not lo:
            return fillers
        sizes = []
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            base = got = 0  # the window holds [base, base + got)

            def word(addr: int) -> int:
                nonlocal base, got
                if not base <= addr <= base + got - 8:
                    mem.seek(addr)
                    base, got = addr, mem.readinto(window) or 0
                    if got < 8:
                        return 0
                return int.from_bytes(window[addr - base:addr - base + 8], "little")

            at = lo
            while at + 16 <= hi:
                size = word(at + 8) & ~7
                nxt = at + size
                if size < 32 or nxt + 16 > hi:
                    break  # the top chunk (or something this walk does not understand)
                if size >= 544 and not word(nxt + 8) & 1:
                    sizes.append(size)
                at = nxt
        if not sizes:
            break
        for size in sizes:
            fillers.append(b"\0" * (size - 41))  # malloc(33 + n) is a chunk of n + 41 bytes
    return fillers



def fill_small_chunks(largest: int = 1040) -> list[object]:
    """Take every free chunk of the C heap up to ``largest`` bytes (glibc's per-thread cache,
    fast and small bins: what :func:`fill_heap_holes`, which sees only chunks whose neighbour
    says they are free, misses); returns what to keep.

    C code asks malloc for small blocks (a buffered file's lock is a 48-byte chunk, the
    interpreter's and the C modules' own structures), and malloc serves them from its free lists
    before the top of the heap: a monitor's would be the fork server's freed chunks, on shared
    pages. Each chunk size is taken with ``malloc`` (through ``_ctypes``, holding the GIL: the call
    allocates nothing from malloc itself) until a chunk comes from the top of the heap (the top
    chunk's start: ``sbrk(0)`` less ``mallinfo2``'s ``keepcost``); none is freed. Run after
    :func:`fill_heap_holes`, before the last :func:`fill_pool_holes` (the objects made here are
    small Python objects: kept).
    """
    from berth.libcontainer import cabi

    class MallInfo2(cabi.Structure):
        _fields_ = [(name, cabi.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = cabi.Library(None)
    try:
        mallinfo2 = libc.function("mallinfo2", (), MallInfo2, hold_gil=True)
    except AttributeError:
        return []  # not glibc 2.33+
    sbrk = libc.function("sbrk", (cabi.c_long,), cabi.c_void_p, hold_gil=True)
    malloc = libc.function("malloc", (cabi.c_size_t,), cabi.c_void_p, hold_gil=True)
    info = mallinfo2()
    top = sbrk(0) - info.keepcost
    size = 32  # malloc(size - 8) is a chunk of ``size`` bytes
    while size <= largest:
        while True:
            chunk = malloc(size - 8)
            if not chunk or chunk >= top:  # None: out of memory
                break
        size += 16
    return [MallInfo2, libc, mallinfo2, sbrk, malloc, info]

# the classes a shim instantiates (module, name): an instance takes a reference to its class,
# which writes to the class's page; moved together (:func:`move_classes`) they share a few
SHIM_CLASSES = (
    ("berth.shim.service", "Service"), ("berth.shim.reactor", "Reactor"), ("berth.shim.reactor", "Timer"),
    ("berth.shim.connection", "Conn"), ("berth.shim.protocol", "FrameDecoder"), ("berth.shim.process", "Process"),
    ("berth.shim.streams", "Pump"), ("berth.shim.waiting", "Waiter"), ("berth.shim.waiting", "Pending"),
    ("berth.shim.execs", "Execs"), ("berth.shim.runtime", "Result"), ("berth.shim.runtime", "Done"),
    ("berth.shim.runtime", "RuntimeState"), ("berth.shim.native", "NativeRuntime"), ("berth.shim.native", "CreateOp"),
    ("berth.shim.helper", "Helper"), ("berth.shim.helper", "HelperOp"), ("berth.shim.helper", "Standby"),
    ("berth.container.logs", "LogWriter"),
)


def move_classes(names: tuple[tuple[str, str], ...] = SHIM_CLASSES) -> int:
    """Remake each named class (a plain class: no subclass, no instance kept) one after another
    and rebind every module's name for it; returns how many. A heap
    type object is about 1 KiB of the C heap; as made at import they lie one per page among
    other objects, and a shim instantiating 20 of them copies ~15 pages; remade in a row (after
    :func:`fill_heap_holes`, so at the heap's top) they share ~5. The originals are kept (no holes)."""
    moved = 0
    for module_name, name in names:
        module = sys.modules.get(module_name)
        cls = getattr(module, name, None)
        if not isinstance(cls, type) or type(cls) is not type or cls.__subclasses__():
            continue
        declared = vars(cls).get("__slots__", ())
        slots = (declared,) if isinstance(declared, str) else tuple(declared)
        ns = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__") and k not in slots}
        new = type(cls.__name__, cls.__bases__, ns)
        new.__qualname__ = cls.__qualname__
        for value in ns.values():  # zero-argument super() finds the class in a __class__ cell
            for func in (getattr(value, "__func__", value), getattr(value, "fget", None), getattr(value, "fset", None)):
                code = getattr(func, "__code__", None)
                if code is not None and "__class__" in code.co_freevars:
                    func.__closure__[code.co_freevars.index("__class__")].cell_contents = new  # type: ignore[union-attr]
        _UNPACKED.append(cls)
        for other in list(sys.modules.values()):
            space = getattr(other, "__dict__", None)
            if not isinstance(space, dict):
                continue
            for key, value in list(space.items()):
                if value is cls:
                    space[key] = new
        moved += 1
    return moved
