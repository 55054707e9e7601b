"""The walls every process of a container gets, whichever door it comes in by.

Two functions, :func:`set_limits` and :func:`confine`, are the last part of the container's
init (after pivot_root) and of every exec'd process (around joining the container's namespaces
and cgroup), so the two doors cannot drift apart (STYLE.md §18, issue 5: an exec once kept the
host's full capability set). They follow runc's ``finalizeNamespace`` and the tail of its
``standard_init_linux.go`` / ``setns_init_linux.go``, in this order:

1. (:func:`set_limits`) rlimits and oom_score_adj, while we have the capabilities raising them
   may need; an exec's launcher does this before it joins the namespaces, because from inside
   them its /proc/self does not exist (it is not in the container's PID namespace);
2. the bounding set (needs CAP_SETPCAP, so before the user switch), then PR_SET_KEEPCAPS;
3. groups and gid (impossible after setuid), cwd as root (the user may not be able to reach
   it) and checked to be inside the container (CVE-2024-21626: a leaked host directory fd as
   cwd); without no_new_privs, the seccomp filter then: loading one needs CAP_SYS_ADMIN, which
   the user switch and the capability steps drop (the profile must allow the calls that
   follow); stdio handed to the user (while we have CAP_CHOWN), the uid;
4. capset and the ambient set;
5. the program to run (PATH lookup, as the user) and the environment (HOME from the
   container's /etc/passwd, read without blocking: :mod:`berth.accountfile`);
6. no_new_privs and, with it, the seccomp filter: the last step before execve, so the filter
   need not allow our own set-up calls.

:func:`seal_imports` is for the moment a child starts to see the container's file system
(pivot_root, or joining the mount namespace): from then on a Python import would read a module
the container put at the host's path, so imports are made impossible instead.

    seal_imports()
    set_limits(spec.process)
    path, env = confine(spec.process, seccomp_program)
    ... execve(path, args, env)
"""

from __future__ import annotations

import os
import resource
import sys

from berth import accountfile
from berth.libcontainer import capabilities, executable, kernel, procfs, seccomp
from berth.libcontainer import stdio as stdio_
from berth.libcontainer.failure import EXIT_OTHER, ContainerInitError, step
from berth.libcontainer.spec import Process


def set_limits(process: Process) -> None:
    """Step 1: the process's rlimits and oom_score_adj (inherited by what it forks)."""
    _set_rlimits(process)
    if process.oom_score_adj is not None:
        try:  # /proc/<pid>, not /proc/self (a symlink): procfs opens no symlink and checks it is procfs
            procfs.write(f"/proc/{os.getpid()}/oom_score_adj", str(process.oom_score_adj))
        except OSError as exc:  # lowering it needs CAP_SYS_RESOURCE
            raise ContainerInitError(
                f"write oom_score_adj {process.oom_score_adj}: {exc.strerror}", EXIT_OTHER
            ) from exc


def confine(process: Process, seccomp_program: bytes | None) -> tuple[str, dict[str, str]]:
    """Steps 2-7 above on the calling process; returns (program path, environment) to exec."""
    _become(process, seccomp_program)
    path = executable.resolve(process.args[0], process.path_env)
    env = environment(process)
    _restrict(process, seccomp_program)
    return path, env


def seal_imports() -> None:
    """No Python import from the file system any more (built-in and frozen modules still work):
    past this point the file system is the container's, and so would be the code.

    The path hooks and the finders' cache are replaced by empty ones, not emptied: emptied, their
    objects would be freed (the cache holds a FileFinder per directory searched, each with the
    names in it, ~700 strings in a shim), and in a forked child every page that frees touches is
    copied first: 0.4 ms of the init's path, against 0.08 ms now. Kept, nothing can reach them:
    the path finder that would consult them is out of ``sys.meta_path``."""
    # importlib's own classes, named rather than imported (importlib.machinery pulls in more)
    keep = ("_frozen_importlib.BuiltinImporter", "_frozen_importlib.FrozenImporter")
    _SEALED_AWAY.append((sys.meta_path[:], sys.path_hooks, sys.path_importer_cache))
    sys.meta_path[:] = [f for f in sys.meta_path if f"{getattr(f, '__module__', '')}.{getattr(f, '__name__', '')}" in keep]
    sys.path_hooks = []
    sys.path_importer_cache = {}


# what seal_imports took out of the import system, kept from being freed (see there)
_SEALED_AWAY: list[object] = []


def _become(process: Process, seccomp_program: bytes | None) -> None:
    """Bounding set, user, cwd, capabilities: runc's finalizeNamespace order."""
    caps = process.capabilities
    last = capabilities.last_cap()
    known = 0
    if caps is not None:
        # Capabilities this kernel does not know are left out, as runc does (capset would fail);
        # so are those the caller itself lacks (here root has no CAP_SYS_RESOURCE): a process
        # cannot grant what it does not hold, and --privileged should still run (runc refuses).
        known = ((1 << (last + 1)) - 1) & kernel.capget()[1]
        for cap in range(last + 1):
            if cap not in caps.bounding:
                step(
                    "drop capability from bounding set",
                    capabilities.name(cap),
                    kernel.prctl,
                    kernel.PR_CAPBSET_DROP,
                    cap,
                )
        # Keep the permitted set across setresuid away from 0; capset below trims it.
        kernel.prctl(kernel.PR_SET_KEEPCAPS, 1)
    user = process.user
    step("setgroups", str(list(user.additional_gids)), os.setgroups, list(user.additional_gids))
    step("setresgid", str(user.gid), os.setresgid, user.gid, user.gid, user.gid)
    chdir_error = _chdir(process.cwd)
    if chdir_error is None:
        _check_cwd(process.cwd)
    # Without no_new_privs the filter needs CAP_SYS_ADMIN in the effective set, which setresuid
    # away from 0 clears: load it now, after the cwd check (a profile may deny getcwd, as the
    # runtime-tools suite's does) and before the user switch.
    if seccomp_program is not None and not process.no_new_privileges:
        step("load seccomp filter", "self", seccomp.load, seccomp_program)
    if user.uid != 0:
        stdio_.give_to(user.uid)  # while we still have CAP_CHOWN
    step("setresuid", str(user.uid), os.setresuid, user.uid, user.uid, user.uid)
    if chdir_error is not None:
        chdir_error = _chdir(process.cwd)
        if chdir_error is not None:
            raise ContainerInitError(
                f'chdir to cwd ("{process.cwd}") set in config.json failed: {executable.go_strerror(chdir_error)}',
                EXIT_OTHER,
            )
        _check_cwd(process.cwd)
    if caps is not None:
        kernel.prctl(kernel.PR_SET_KEEPCAPS, 0)
        step(
            "capset",
            "self",
            kernel.capset,
            capabilities.mask(caps.effective) & known,
            capabilities.mask(caps.permitted) & known,
            capabilities.mask(caps.inheritable) & known,
        )
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # runc only warns about the others (`runc spec` lists ambient ones without an
        # inheritable set), so they are left out here too.
        raisable = caps.permitted & caps.inheritable
        for cap in sorted(c for c in caps.ambient if known >> c & 1 and c in raisable):
            step(
                "raise ambient capability",
                capabilities.name(cap),
                kernel.prctl,
                kernel.PR_CAP_AMBIENT,
                kernel.PR_CAP_AMBIENT_RAISE,
                cap,
            )


def _restrict(process: Process, seccomp_program: bytes | None) -> None:
    """no_new_privs, then (with it) the seccomp filter: the last steps before exec."""
    # no_new_privs would not stop anything done above, only setuid binaries and file
    # capabilities the container runs; with it set, the filter loads without CAP_SYS_ADMIN and
    # as late as possible, so it need not allow our own set-up calls.
    if process.apparmor_profile:
        _apparmor_on_exec(process.apparmor_profile)
    if process.no_new_privileges:
        kernel.prctl(kernel.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp_program is not None:
            step("load seccomp filter", "self", seccomp.load, seccomp_program)


def _apparmor_on_exec(profile: str) -> None:
    """The AppArmor profile the kernel switches to at execve (runc's changeOnExec): written to
    the process's attr (the LSM-specific file where the kernel has one)."""
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ContainerInitError(f"apply AppArmor profile {profile!r}: open {path}: {exc.strerror}", EXIT_OTHER) from exc
        try:
            os.write(fd, f"exec {profile}".encode())
        except OSError as exc:
            raise ContainerInitError(f"apply AppArmor profile {profile!r}: {exc.strerror}", EXIT_OTHER) from exc
        finally:
            os.close(fd)
        return
    raise ContainerInitError(f"apply AppArmor profile {profile!r}: the kernel has no AppArmor", EXIT_OTHER)


def _set_rlimits(process: Process) -> None:
    for rl in process.rlimits:
        try:
            resource.setrlimit(rl.resource, (rl.soft, rl.hard))
        except ValueError:
            # Raising a hard limit needs CAP_SYS_RESOURCE, which root may lack (as on these
            # machines): clamp to the current hard limit rather than fail the container.
            _, hard = resource.getrlimit(rl.resource)
            cap = hard if hard != resource.RLIM_INFINITY else rl.hard
            resource.setrlimit(rl.resource, (min(rl.soft, cap), min(rl.hard, cap)))
        except OSError as exc:
            raise ContainerInitError(f"setrlimit {rl.name}: {exc.strerror}", EXIT_OTHER) from exc


def _chdir(cwd: str) -> int | None:
    try:
        os.chdir(cwd)
    except OSError as exc:
        return exc.errno
    return None


def _check_cwd(cwd: str) -> None:
    # A cwd reached through a directory fd of the host (/proc/self/fd/N) is outside our root:
    # the kernel then has no path for it from "/" and getcwd fails (runc's CVE-2024-21626 check).
    try:
        os.getcwd()
    except OSError as exc:
        raise ContainerInitError(
            f'chdir to cwd ("{cwd}") set in config.json failed: the directory is outside the container',
            EXIT_OTHER,
        ) from exc


def home(uid: int) -> str:
    """runc's HOME: the user's passwd entry in the container, "/" without one."""
    try:
        fd = os.open("/etc/passwd", accountfile.FLAGS)
    except OSError:
        return "/"  # no (readable) passwd file in the image: "/" as in runc
    try:
        text = accountfile.read(fd, "/etc/passwd").decode("utf-8", "replace")
    except accountfile.AccountFileError as exc:
        raise ContainerInitError(f"unable to find user {uid}: {exc}", EXIT_OTHER) from exc
    finally:
        os.close(fd)
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid):
            return fields[5] or "/"
    return "/"


def environment(process: Process) -> dict[str, str]:
    """The process's environment as execve gets it: PATH by default, HOME from passwd."""
    env: dict[str, str] = {}
    for entry in process.env:
        key, sep, value = entry.partition("=")
        if "\0" in entry:  # execve cannot pass it; runc refuses it before the process runs
            part = "name" if "\0" in key else "value"
            raise ContainerInitError(
                f"environment variable {part} can't contain null(\\x00): {_go_quote(entry)}", EXIT_OTHER
            )
        if sep and key:
            env[key] = value
    env.setdefault("PATH", process.path_env)
    if "HOME" not in env:
        env["HOME"] = home(process.user.uid)
    return env


def _go_quote(text: str) -> str:
    """Go's %q for the ASCII cases runc's messages quote: ``"A=b\\x00c"``."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'
