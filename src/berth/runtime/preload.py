"""``create`` and ``run`` without the import machinery: their modules' code, run in order from one file.

A ``berth-runtime run`` imports about forty of berth's modules before it forks init (init may
import nothing once it has pivoted). Through importlib each costs its Python-level bookkeeping
(finders, specs, locks, the pyc's stat/open/read/validate) on top of running its code: ~2 ms of
CPU of a run's ~25. ``scripts/setup.sh`` writes, with :func:`build`, one file holding the
compiled code of those modules in the order their imports *finish* (a module after everything
it imports, a package after its submodules: ``berth.libcontainer.cgroups.files`` before
``berth.libcontainer.cgroups``), and berth-runtime's launcher calls :func:`preload` first: each
module object is made, its code run in its own namespace and the module put in ``sys.modules``
and on its package, so the ``import`` statements in the code that follows find it there (the
interpreter's C fast path) and importlib is never entered.

The file is a 4-byte length, an index (the header; name, file, package, mtime and size of each
module), then every module's code object in one marshal: read with one read(2) into one buffer,
the index checked, then all the code unmarshalled at once, with no per-module copy of its bytes
(one copy fewer of ~0.5 MB: ~80 page faults and ~0.9 ms of CPU fewer than a file of per-module
marshalled bytes).

Nothing stale or foreign runs: the file is used only when it is owned by root or by us and
writable by nobody else, when it was written by this interpreter (cache tag and marshal
version), and when every source file still has the size and mtime it had when it was compiled;
otherwise (or when the file is missing) the command imports as usual. A module whose code
raises while preloading makes everything preloaded be taken back out of ``sys.modules``, and the
command then imports as usual (the real error, if it is one, shows there).

    build("/venv/lib/berth-runtime.preload", "/repo/src")     # scripts/setup.sh
    preload("/venv/lib/berth-runtime.preload", sys.argv)      # the launcher, before anything else

Only ``create`` and ``run`` are preloaded (``exec`` and the small commands import a few modules).
The cgroup warming (:data:`EARLY`, :mod:`berth.libcontainer.cgroups.warm`: it imports nothing but
``os``) runs first and is started before the rest loads, so that the kernel's grace period for
the init's cgroup join passes while the modules load (~5 ms earlier than from the command).
The modules are what importing :data:`ENTRIES` brings in; a test runs a real ``run`` and checks
that it imports none of berth's modules outside that set. Their ``from __future__ import
annotations`` is compiled in as the flag it is, not run as an import (nor is it in this module,
which the launcher imports as usual): nothing of the ``__future__`` module is loaded.
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# what a create/run imports (cli.main and the lazy imports of create, cmd_run and control)
ENTRIES = (
    "berth.runtime.cli",
    "berth.libcontainer.cgroups.warm",
    "berth.runtime.create",
    "berth.runtime.bundle",
    "berth.runtime.control",
    "berth.runtime.state",
    "berth.runtime.hooks",
    "berth.libcontainer.rootfs",
    "berth.libcontainer.cgroups",
    "berth.libcontainer.process",
    "berth.libcontainer.spec",
    "berth.libcontainer.capabilities",
    "berth.libcontainer.kernel",
)
COMMANDS = ("create", "run")
# run first, and started (warm_in_background), before the other modules
EARLY = "berth.libcontainer.cgroups.warm"
FORMAT = 2
# berth-runtime's global options that take a value (cli.parse's table)
_VALUED = ("--root", "--log", "--log-format", "--criu", "--rootless")


def _header() -> "tuple[int, str, int]":
    return (FORMAT, sys.implementation.cache_tag or "", __import__("marshal").version)


def command_of(argv: "list[str]") -> "str | None":
    """The command word of a berth-runtime command line (after the global options)."""
    i = 1
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-") or word == "-":
            return word
        i += 2 if word in _VALUED else 1
    return None


def preload(path: str, argv: "list[str]") -> bool:
    """Run the modules of ``argv``'s command from ``path``; False when nothing was preloaded."""
    if command_of(argv) not in COMMANDS:
        return False
    import marshal
    import posix

    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = posix.fstat(fd)
        if st.st_uid not in (0, posix.geteuid()) or st.st_mode & 0o022:
            return False
        data = posix.read(fd, st.st_size)  # one read, into one buffer: the file is ~0.5 MB
        while len(data) < st.st_size:
            more = posix.read(fd, st.st_size - len(data))
            if not more:
                return False
            data += more
    finally:
        posix.close(fd)
    try:
        # [4 bytes: the length N of the index] [the index: header, (name, file, package, mtime,
        # size) per module] [the code objects, in the index's order]: the index is checked
        # before any code is even unmarshalled
        size = int.from_bytes(data[:4], "little")
        header, entries = marshal.loads(data[4 : 4 + size])
        if tuple(header) != _header():
            return False
        for _name, file, _pkg, mtime, fsize in entries:
            try:
                src = posix.stat(file)
            except OSError:
                return False
            if src.st_mtime_ns != mtime or src.st_size != fsize:
                return False
        codes = marshal.loads(memoryview(data)[4 + size :])
    except (ValueError, EOFError, TypeError):
        return False
    del data
    if len(codes) != len(entries):
        return False
    return _run([(*e, c) for e, c in zip(entries, codes, strict=True)])


def _run(entries: "list[tuple[str, str, bool, int, int, Any]]") -> bool:
    modules = sys.modules
    module_type = type(sys)
    packages = {e[0]: e[1] for e in entries if e[2]}
    made: list[str] = []
    ran: set[str] = set()

    def module(name: str, file: str, package: bool) -> "Any":
        m = modules.get(name)
        if m is None:
            m = module_type(name)
            m.__file__ = file
            m.__package__ = name if package else name.rpartition(".")[0]
            if package:
                m.__path__ = [file.rpartition("/")[0]]
            modules[name] = m
            made.append(name)
        return m

    def execute(name: str, file: str, package: bool, code: "Any") -> "Any":
        parent, _, child = name.rpartition(".")
        if parent and parent not in modules:
            if parent not in packages:
                raise ImportError(f"{name}: its package {parent} is not in the preload")
            module(parent, packages[parent], True)  # its code runs at its own turn, later
        m = module(name, file, package)
        ran.add(name)
        exec(code, m.__dict__)  # noqa: S102 -- our own compiled sources, checked above
        if parent:
            setattr(modules[parent], child, m)
        return m

    early = None
    try:
        for name, file, package, _mtime, _size, code in entries:
            if name == EARLY:
                early = execute(name, file, package, code)
                early.warm_in_background(init_forked_into_cgroup=True)
                break
        for name, file, package, _mtime, _size, code in entries:
            if name in ran or (name in modules and name not in made):
                continue  # run already (EARLY), or imported already (the launcher's own packages)
            execute(name, file, package, code)
    except Exception:  # noqa: BLE001 -- anything: take it all back and import as usual
        if early is not None:
            early.stop_warming()  # the command starts its own, from the module it imports
        for name in made:
            modules.pop(name, None)
        return False
    return True


def pack(header: "tuple[int, str, int]", entries: "list[tuple[str, str, bool, int, int]]", codes: "list[Any]") -> bytes:
    """The file's bytes: the index's length, the index, the code objects (see the module's text)."""
    import marshal

    index = marshal.dumps((header, entries))
    return len(index).to_bytes(4, "little") + index + marshal.dumps(tuple(codes))


def build(path: str, src: str) -> int:
    """Write the preload file for the sources under ``src``; returns the number of modules.
    Runs :data:`ENTRIES`' imports in a fresh interpreter (this one's, ``-I -S``) to learn the
    order in which they finish."""
    import __future__

    import ast
    import os
    import subprocess

    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import importlib._bootstrap as b\n"
        "done = []\n"
        "load = b._load_unlocked\n"
        "def traced(spec):\n"
        "    module = load(spec)\n"
        "    if spec.name == 'berth' or spec.name.startswith('berth.'): done.append(spec.name)\n"
        "    return module\n"
        "b._load_unlocked = traced\n"
        "for name in sys.argv[2:]: __import__(name)\n"
        "print(' '.join(done))\n"
    )
    names = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, src, *ENTRIES], check=True, capture_output=True, text=True
    ).stdout.split()
    entries = []
    codes = []
    for name in names:
        base = os.path.join(src, *name.split("."))
        package = os.path.isfile(os.path.join(base, "__init__.py"))
        file = os.path.join(base, "__init__.py") if package else base + ".py"
        with open(file, "rb") as f:
            source = f.read()
        st = os.stat(file)
        tree = ast.parse(source, file)
        flags = 0
        for node in [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]:
            flags |= sum(getattr(__future__, alias.name).compiler_flag for alias in node.names)
            tree.body.remove(node)
        code = compile(tree, file, "exec", flags=flags, dont_inherit=True)
        entries.append((name, file, package, st.st_mtime_ns, st.st_size))
        codes.append(code)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, pack(_header(), entries, codes))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return len(entries)


if __name__ == "__main__":
    # python -m berth.runtime.preload OUT SRC   (scripts/setup.sh)
    print(build(sys.argv[1], sys.argv[2]))
