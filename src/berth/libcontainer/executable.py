"""Finding the program to exec inside the container, with runc's (Go ``exec.LookPath``) wording.

Runs inside the container after pivot_root and the user switch, so ``root`` is ``"/"`` there
and access checks are made as the container's user; unit tests pass a temp dir as ``root``.

    >>> resolve("sh", "/bin", root="/")          # doctest: +SKIP
    '/bin/sh'

Failures raise ContainerInitError: a missing file is 127 (``exec: "x": stat x: no such file
or directory`` or ``exec: "x": executable file not found in $PATH``), a file that cannot be
executed 126 (``exec: "x": permission denied``).
"""

from __future__ import annotations

import errno
import os
import stat

from berth.libcontainer.failure import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_OTHER, ContainerInitError


def go_strerror(code: int) -> str:
    """Go spells errno text in lower case: ``no such file or directory``."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def exit_code_for(code: int) -> int:
    if code in (errno.ENOENT, errno.ENOTDIR):
        return EXIT_NOT_FOUND
    if code in (errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOEXEC):
        return EXIT_CANNOT_EXECUTE
    return EXIT_OTHER


def _check(path: str) -> int | None:
    """None when ``path`` is an executable file, else the errno that says why not."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.errno or errno.ENOENT
    if stat.S_ISDIR(st.st_mode) or not os.access(path, os.X_OK):
        return errno.EACCES
    return None


def _host_path(root: str, path: str) -> str:
    """``path`` as the caller sees it: itself inside the container, else under ``root``."""
    if root == "/":
        return path  # relative paths are relative to the cwd, as for execve
    return os.path.join(root, path.lstrip("/"))


def resolve(name: str, path_env: str, root: str = "/") -> str:
    """The path to execve for ``args[0]``, as seen from inside the container (without ``root``)."""
    if "/" in name:
        code = _check(_host_path(root, name))
        if code is None:
            return name
        if code == errno.EACCES:
            raise ContainerInitError(f'exec: "{name}": permission denied', EXIT_CANNOT_EXECUTE)
        raise ContainerInitError(f'exec: "{name}": stat {name}: {go_strerror(code)}', exit_code_for(code))
    for directory in path_env.split(":"):
        directory = directory or "."
        candidate = os.path.join(directory, name)
        if _check(_host_path(root, candidate)) is None:
            return candidate
    raise ContainerInitError(f'exec: "{name}": executable file not found in $PATH', EXIT_NOT_FOUND)
