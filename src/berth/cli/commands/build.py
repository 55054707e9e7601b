"""``berth build``: the classic builder, as ``DOCKER_BUILDKIT=0 docker build`` drives it.

The context directory is sent as an uncompressed tar (``POST /build``, chunked) after
``.dockerignore`` (:mod:`berth.dockerignore`) has left files out; the Dockerfile and
``.dockerignore`` are always sent. A Dockerfile from ``-f -`` or from outside the context goes
in as ``.dockerfile.<random>`` and is listed in the sent ``.dockerignore``, as the docker CLI
does. ``-`` as the context reads a tar (any compression) or a lone Dockerfile from stdin.
The JSON stream prints as it comes; ``aux`` carries the image id (``--iidfile``, ``-q``); an
error ends the command with the RUN's exit code (or 1)::

    berth build -t app:1 --build-arg V=2 .
    berth build -q -f - . < Dockerfile
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import tarfile
import tempfile

from berth.cli.options import Command, Flag
from berth.errors import BerthError, InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any

SPEC = Command(
    "build",
    "berth build [OPTIONS] PATH | -",
    "Build an image from a Dockerfile",
    (
        Flag(("--add-host",), "list", "Add a custom host-to-IP mapping (host:ip)"),
        Flag(("--build-arg",), "list", "Set build-time variables"),
        Flag(("--cache-from",), "list", "Images to consider as cache sources"),
        Flag(("--cpu-period",), "int", "Limit the CPU CFS (Completely Fair Scheduler) period"),
        Flag(("--cpu-quota",), "int", "Limit the CPU CFS (Completely Fair Scheduler) quota"),
        Flag(("-c", "--cpu-shares"), "int", "CPU shares (relative weight)"),
        Flag(("--cpuset-cpus",), "value", "CPUs in which to allow execution (0-3, 0,1)"),
        Flag(("-f", "--file"), "value", "Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
        Flag(("--force-rm",), help="Always remove intermediate containers"),
        Flag(("--iidfile",), "value", "Write the image ID to the file"),
        Flag(("--label",), "list", "Set metadata for an image"),
        Flag(("-m", "--memory"), "value", "Memory limit"),
        Flag(("--memory-swap",), "value", "Swap limit equal to memory plus swap: -1 to enable unlimited swap"),
        Flag(("--network",), "value", "Set the networking mode for the RUN instructions during build",
             default="default"),
        Flag(("--no-cache",), help="Do not use cache when building the image"),
        Flag(("--platform",), "value", "Set platform if server is multi-platform capable"),
        Flag(("--pull",), help="Always attempt to pull a newer version of the image"),
        Flag(("-q", "--quiet"), help="Suppress the build output and print image ID on success"),
        Flag(("--rm",), help="Remove intermediate containers after a successful build", default=True),
        Flag(("--shm-size",), "value", "Size of /dev/shm"),
        Flag(("-t", "--tag"), "list", "Name and optionally a tag in the 'name:tag' format"),
        Flag(("--target",), "value", "Set the target build stage to build."),
    ),
    min_args=1,
    max_args=1,
)
CHUNK = 256 * 1024


def _args(items: list[str], env: dict[str, str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        out[key] = value if eq else env.get(key)  # --build-arg NAME takes the client's value
    return out


def _labels(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (item.partition("=") for item in items)}


def _size(text: str | None) -> int | None:
    if not text:
        return None
    from berth.cli.units import bytes_size

    return int(bytes_size(text))


def context_tar(root: str, out: IO[bytes], extra: dict[str, bytes], keep: tuple[str, ...]) -> None:
    """Write the context directory ``root`` as a tar: .dockerignore applied (``keep`` always
    sent), ``extra`` files added, owners zeroed as the docker CLI does."""
    from berth.dockerignore import Matcher, read_patterns

    try:
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            patterns = read_patterns(f.read())
    except FileNotFoundError:
        patterns = []
    try:
        matcher = Matcher(patterns)
    except ValueError as exc:
        raise InvalidParameter(f"error checking context: {exc}") from None
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in _walk(root, "", matcher, keep):
            info = tar.gettarinfo(path, rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as data:
                    tar.addfile(info, data)
            elif info.isdir() or info.issym():
                tar.addfile(info)
            # devices, fifos and sockets stay behind, as the docker CLI leaves them
        for name, content in extra.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))


def _walk(root: str, rel: str, matcher: Any, keep: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    try:
        names = sorted(os.listdir(os.path.join(root, rel)))
    except OSError as exc:
        raise InvalidParameter(f"error checking context: {exc.strerror}: {os.path.join(root, rel)}") from None
    for name in names:
        child = f"{rel}/{name}" if rel else name
        path = os.path.join(root, child)
        info = os.lstat(path)
        excluded = child not in keep and matcher.excluded(child)
        if stat.S_ISDIR(info.st_mode):
            if not excluded:
                yield child, path
            if not excluded or matcher.may_include_under(child):
                yield from _walk(root, child, matcher, keep)
        elif not excluded:
            yield child, path


def _stdin_bytes(ctx: Any) -> bytes:
    from berth.cli.terminal import fd_of

    fd = fd_of(ctx.stdin)
    if fd < 0:
        raise InvalidParameter("build: standard input has no file descriptor")
    chunks = []
    while chunk := os.read(fd, CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def _is_archive(data: bytes) -> bool:
    if data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return True
    if len(data) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _file_chunks(f: IO[bytes]) -> Iterator[bytes]:
    f.seek(0)
    while chunk := f.read(CHUNK):
        yield chunk


def _registry_config(env: dict[str, str]) -> str:
    import base64
    import json

    from berth.cli.credentials import config_dir, lookup

    auths: dict[str, Any] = {}
    try:
        with open(config_dir(env) / "config.json") as f:
            doc = json.load(f)
        for server in (doc.get("auths") or {}) if isinstance(doc, dict) else {}:
            creds = lookup(config_dir(env), server)
            if creds:
                auths[server] = creds
    except (OSError, ValueError, BerthError):
        auths = {}  # no usable config: anonymous pulls, as the docker CLI sends e30=
    return base64.urlsafe_b64encode(json.dumps(auths).encode()).decode()


def build(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(SPEC, argv)
    source = args[0]
    if source.startswith(("http://", "https://", "git://", "git@", "github.com/")):
        raise InvalidParameter("berth build: remote contexts (git, URL) are not supported; clone it first")
    dockerfile_opt = opts["file"] or ""
    query: dict[str, Any] = {
        "t": opts["tag"] or None,
        "buildargs": None,
        "labels": None,
        "target": opts["target"] or None,
        "nocache": "1" if opts["no_cache"] else None,
        "pull": "1" if opts["pull"] else None,
        "rm": "1" if opts["rm"] else "0",
        "forcerm": "1" if opts["force_rm"] else None,
        "q": "1" if opts["quiet"] else None,
        "networkmode": opts["network"] if opts["network"] not in ("", "default") else None,
        "extrahosts": ",".join(opts["add_host"]) or None,
        "platform": opts["platform"] or None,
        "cpushares": opts["cpu_shares"] or None,
        "cpuperiod": opts["cpu_period"] or None,
        "cpuquota": opts["cpu_quota"] or None,
        "cpusetcpus": opts["cpuset_cpus"] or None,
        "memory": _size(opts["memory"]),
        "memswap": -1 if opts["memory_swap"] == "-1" else _size(opts["memory_swap"]),
        "shmsize": _size(opts["shm_size"]),
        "version": "1",
    }
    import json

    if opts["build_arg"]:
        query["buildargs"] = json.dumps(_args(opts["build_arg"], ctx.env))
    if opts["label"]:
        query["labels"] = json.dumps(_labels(opts["label"]))
    if opts["cache_from"]:
        query["cachefrom"] = json.dumps(opts["cache_from"])
    with tempfile.TemporaryFile() as body:
        if source == "-":
            if dockerfile_opt == "-":
                raise InvalidParameter("invalid argument: can't use stdin for both build context and dockerfile")
            data = _stdin_bytes(ctx)
            if _is_archive(data):
                body.write(data)
                query["dockerfile"] = dockerfile_opt or None
            else:
                with tarfile.open(fileobj=body, mode="w|") as tar:
                    info = tarfile.TarInfo("Dockerfile")
                    info.size, info.mode = len(data), 0o600
                    tar.addfile(info, io.BytesIO(data))
        else:
            if not os.path.isdir(source):
                raise InvalidParameter(f'unable to prepare context: path "{source}" not found')
            root = os.path.abspath(source)
            extra: dict[str, bytes] = {}
            keep = [".dockerignore", "Dockerfile"]
            if dockerfile_opt == "-" or (dockerfile_opt and not _inside(root, dockerfile_opt)):
                if dockerfile_opt == "-":
                    text = _stdin_bytes(ctx)
                else:
                    try:
                        with open(dockerfile_opt, "rb") as f:
                            text = f.read()
                    except OSError as exc:
                        raise InvalidParameter(f"unable to prepare context: {exc.strerror}: {dockerfile_opt}") from None
                name = f".dockerfile.{secrets.token_hex(10)}"
                extra[name] = text
                ignore = _read(os.path.join(root, ".dockerignore"))
                extra[".dockerignore"] = ignore + b"\n.dockerignore\n" + name.encode() + b"\n"
                keep.remove(".dockerignore")
                query["dockerfile"] = name
            else:
                rel = os.path.relpath(os.path.join(root, dockerfile_opt), root) if dockerfile_opt else "Dockerfile"
                if not os.path.exists(os.path.join(root, rel)) and not dockerfile_opt and os.path.exists(
                        os.path.join(root, "dockerfile")):
                    rel = "dockerfile"
                if not os.path.exists(os.path.join(root, rel)):
                    raise InvalidParameter(
                        f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat "
                        f"{os.path.join(root, rel)}: no such file or directory"
                    )
                keep.append(rel)
                query["dockerfile"] = rel
            context_tar(root, body, extra, tuple(keep))
        size = body.tell()
        if not opts["quiet"]:
            from berth.cli.units import human_size

            ctx.out(f"Sending build context to Docker daemon  {human_size(size, 4)}\n\n")
            ctx.stdout.flush()
        resp = ctx.client.open(
            "POST", "/build", query=query, body=_file_chunks(body),
            headers={"Content-Type": "application/x-tar", "X-Registry-Config": _registry_config(ctx.env)},
        )
        return _show(ctx, resp, opts)


def _inside(root: str, path: str) -> bool:
    full = os.path.abspath(path)
    return full == root or full.startswith(root + os.sep)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _show(ctx: Any, resp: Any, opts: dict[str, Any]) -> int:
    from berth.client.jsonstream import JSONStreamDecoder

    decoder = JSONStreamDecoder()
    image_id = ""
    for chunk in resp.iter_chunks():
        for msg in decoder.feed(chunk):
            if not isinstance(msg, dict):
                continue
            detail = msg.get("errorDetail")
            if isinstance(detail, dict) or msg.get("error"):
                resp.close()
                text = (detail or {}).get("message") or msg.get("error") or "unknown error"
                ctx.stderr.write(f"{text}\n")
                code = (detail or {}).get("code")
                return int(code) if isinstance(code, int) and code > 0 else 1
            if isinstance(msg.get("aux"), dict) and msg["aux"].get("ID"):
                image_id = str(msg["aux"]["ID"])
                continue
            text = msg.get("stream")
            if isinstance(text, str):
                if opts["quiet"]:
                    if text.startswith("sha256:"):
                        image_id = text.strip()
                        ctx.out(text)
                    continue
                ctx.out(text)
                ctx.stdout.flush()
            elif msg.get("status") and not opts["quiet"]:
                from berth.cli.progress import render_message

                ctx.out(render_message(msg))
    decoder.close()
    if opts["iidfile"] and image_id:
        with open(opts["iidfile"], "w") as f:
            f.write(image_id)
    return 0


PRUNE = Command(
    "builder prune",
    "berth builder prune [OPTIONS]",
    "Remove build cache",
    (
        Flag(("-a", "--all"), help="Remove all unused build cache, not just dangling ones"),
        Flag(("-f", "--force"), help="Do not prompt for confirmation"),
    ),
    max_args=0,
)


def builder_prune(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE, argv)
    if not opts["force"]:
        ctx.out("WARNING! This will remove all dangling build cache.\nAre you sure you want to continue? [y/N] ")
        ctx.stdout.flush()
        answer = ctx.stdin.readline() if ctx.stdin is not None else ""
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    result = ctx.client.call("POST", "/build/prune", query={"all": "1" if opts["all"] else None}) or {}
    deleted = result.get("CachesDeleted") or []
    if deleted:
        ctx.out("Deleted build cache objects:\n" + "".join(f"{key.removeprefix('sha256:')[:25]}\n" for key in deleted))
    from berth.cli.units import human_size

    ctx.out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
    return 0
