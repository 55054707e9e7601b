"""One stage's instructions, dispatched as the classic builder does.

The model (moby's ``dispatchers.go``): a stage carries a *run config* (Docker's container
config: Env, Cmd, Entrypoint, WorkingDir, User, Labels, ...), the current image, the shell and
the build arguments it declared. Each instruction changes the run config and commits a new
image whose parent is the current one:

- metadata instructions (ENV, LABEL, CMD, USER, EXPOSE ...) commit a config-only image (history
  ``/bin/sh -c #(nop)  ENV A=1``, an empty layer) -- no container is needed for that;
- RUN creates a container from the current image with the command, the stage's Env plus the
  visible build arguments and no entrypoint, starts it, waits, and commits it; its history and
  cache key name the command prefixed with the build arguments (``|1 X=42 /bin/sh -c ...``);
- COPY/ADD and a WORKDIR that must make its directory write a layer tar and commit it.

Before committing, every step probes the cache (parent + probe config); the first miss in a
stage says why and stops probing for the rest of the stage, as dockerd does.
"""

from __future__ import annotations

import asyncio
import copy
import posixpath
import re
import signal as signals
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth.builder import copier
from berth.builder import instructions as ins
from berth.builder.buildargs import StageArgs
from berth.builder.cache import Detail, cache_key
from berth.builder.imagefs import ImageFS
from berth.builder.parser import parse as parse_dockerfile
from berth.builder.shell import Lexer, expand_text
from berth.builder.sources import ContextSource, ImageSource, Source
from berth.builder.words import go_quote_list
from berth.errors import BerthError, InvalidParameter
from berth.graph.changes import expand_port
from berth.graph.image import container_config

if TYPE_CHECKING:
    from berth.builder.build import Build

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VAR_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


class StepError(BerthError):
    """A step failed; ``code`` is the RUN's exit code (the CLI exits with it)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StageState:
    name: str
    index: int
    image_id: str                 # "" while a FROM scratch stage has no image yet
    config: dict[str, Any]
    args: StageArgs
    cmd_set: bool = False
    author: str = ""
    busted: bool = False          # the cache missed once: no more probes in this stage
    base: str = ""
    containers: list[str] = field(default_factory=list)


def env_dict(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out.setdefault(key, value)
    return out


def begin_config(image_config: dict[str, Any] | None) -> dict[str, Any]:
    """The run config a stage starts with: the base image's, with a PATH and without stdin."""
    config = copy.deepcopy(image_config or {})
    env = list(config.get("Env") or [])
    if not any(item.partition("=")[0] == "PATH" for item in env):
        env.append(DEFAULT_PATH)
    config["Env"] = env
    config["OpenStdin"] = False
    config["StdinOnce"] = False
    return config


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for the durations a HEALTHCHECK takes."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:g}ms"
    total = ns / 1e9
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{seconds:g}s"


class Dispatcher:
    def __init__(self, build: Build, state: StageState) -> None:
        self.build = build
        self.state = state
        self.host = build.host
        self.out = build.out
        self.lexer = Lexer(build.dockerfile.escape)

    # -- helpers ------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.state.config

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        env = env_dict(self.config)
        return {**env, **self.state.args.visible(env)}

    def expand(self, word: str) -> str:
        return self.lexer.process_word(word, self.env())

    def referenced_args(self, text: str) -> dict[str, str]:
        names = set(_VAR_RE.findall(text))
        values = self.state.args.values()
        return {k: v for k, v in values.items() if k in names}

    def image_config(self) -> dict[str, Any]:
        config = container_config(self.config)
        config["Image"] = self.state.image_id
        return config

    def probe_config(self, cmd: list[str], drop_entrypoint: bool = False) -> dict[str, Any]:
        probe = dict(self.config)
        probe["Cmd"] = cmd
        if drop_entrypoint and cmd:
            probe["Entrypoint"] = None
        probe = container_config(probe)
        probe["Image"] = self.state.image_id
        return probe

    async def probe(self, probe: dict[str, Any], detail: Detail) -> str | None:
        """The cache key, or None when the cache answered (the stage moved to the cached image)."""
        key = cache_key(self.state.image_id, probe)
        if self.build.request.no_cache or self.state.busted:
            return key
        cached = await asyncio.to_thread(self.host.cache.get, key)
        if cached is not None:
            if await self.host.image_exists(cached):
                await self.out.stream(" ---> Using cache\n")
                self.state.image_id = cached
                return None
            await asyncio.to_thread(self.host.cache.forget, key)
            reason = "the image this step made last time was removed"
        else:
            reason = await asyncio.to_thread(self.host.cache.why_missed, self.state.image_id, detail)
        self.state.busted = True
        await self.out.stream(f" ---> Cache miss: {reason}\n")
        return key

    async def record(self, key: str, parent: str, image_id: str, detail: Detail) -> None:
        await asyncio.to_thread(self.host.cache.put, key, parent, image_id, detail)
        self.state.image_id = image_id

    async def commit_metadata(self, comment: str, detail: Detail) -> None:
        probe = self.probe_config(self.shell() + ["#(nop) ", comment])
        key = await self.probe(probe, detail)
        if key is None:
            return
        parent = self.state.image_id
        image_id = await self.host.derive(parent, None, self.image_config(), probe, " ".join(probe["Cmd"]),
                                          self.state.author)
        await self.record(key, parent, image_id, detail)

    def metadata_detail(self, node: ins.Instruction, comment: str) -> Detail:
        return Detail(node.keyword.upper(), comment, self.referenced_args(node.text), identity=node.text)

    # -- dispatch -------------------------------------------------------------------------
    async def dispatch(self, step: ins.Instruction) -> None:
        handler: Callable[[Any], Awaitable[None]] = getattr(self, "do_" + step.keyword)
        try:
            await handler(step)
        except (StepError, asyncio.CancelledError):
            raise
        except BerthError as exc:
            raise StepError(exc.message) from exc

    async def do_env(self, step: ins.Env) -> None:
        env_now = self.env()
        pairs = [(self.lexer.process_word(k, env_now), self.lexer.process_word(v, env_now)) for k, v in step.pairs]
        entries = list(self.config.get("Env") or [])
        for key, value in pairs:
            if not key:
                raise InvalidParameter("ENV names can not be blank")
            for i, item in enumerate(entries):
                if item.partition("=")[0] == key:
                    entries[i] = f"{key}={value}"
                    break
            else:
                entries.append(f"{key}={value}")
        self.config["Env"] = entries
        comment = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_label(self, step: ins.Label) -> None:
        env_now = self.env()
        pairs = [
            (self.lexer.process_word(k, env_now), self.lexer.process_word(v, env_now)) if step.expand else (k, v)
            for k, v in step.pairs
        ]
        labels = dict(self.config.get("Labels") or {})
        for key, value in pairs:
            if not key:
                raise InvalidParameter("LABEL names can not be blank")
            labels[key] = value
        self.config["Labels"] = labels
        comment = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_arg(self, step: ins.Arg) -> None:
        words = []
        for name, default in step.args:
            value = self.expand(default) if default is not None else None
            self.state.args.declare(name, value)
            words.append(f"{name}={value}" if value is not None else name)
        comment = "ARG " + " ".join(words)
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_maintainer(self, step: ins.Maintainer) -> None:
        self.state.author = self.expand(step.name)
        comment = "MAINTAINER " + self.state.author
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_user(self, step: ins.User) -> None:
        self.config["User"] = self.expand(step.user)
        comment = "USER " + self.config["User"]
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_expose(self, step: ins.Expose) -> None:
        ports = [self.expand(p) for p in step.ports]
        exposed = dict(self.config.get("ExposedPorts") or {})
        for port in ports:
            for spec in expand_port(port):
                exposed[spec] = {}
        self.config["ExposedPorts"] = exposed
        comment = "EXPOSE " + " ".join(ports)
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_volume(self, step: ins.Volume) -> None:
        paths = [self.expand(p).strip() for p in step.paths]
        volumes = dict(self.config.get("Volumes") or {})
        for path in paths:
            if not path:
                raise InvalidParameter("VOLUME specified can not be an empty string")
            volumes[path] = {}
        self.config["Volumes"] = volumes
        comment = f"VOLUME [{' '.join(paths)}]"
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_stopsignal(self, step: ins.StopSignal) -> None:
        sig = self.expand(step.signal)
        _check_signal(sig)
        self.config["StopSignal"] = sig
        comment = "STOPSIGNAL " + sig
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_shell(self, step: ins.Shell) -> None:
        self.config["Shell"] = list(step.args)
        comment = f"SHELL [{' '.join(step.args)}]"
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_healthcheck(self, step: ins.Healthcheck) -> None:
        self.config["Healthcheck"] = dict(step.config)
        hc = step.config
        if hc.get("Test") == ["NONE"]:
            comment = 'HEALTHCHECK &{["NONE"] "0s" "0s" "0s" \'\\x00\'}'
        else:
            retries = hc.get("Retries", 0)
            comment = (
                f"HEALTHCHECK &{{{go_quote_list(hc['Test'])} \"{go_duration(hc.get('Interval', 0))}\" "
                f"\"{go_duration(hc.get('Timeout', 0))}\" \"{go_duration(hc.get('StartPeriod', 0))}\" "
                f"'\\x{retries:02x}'}}"
            )
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_onbuild(self, step: ins.Onbuild) -> None:
        self.config["OnBuild"] = list(self.config.get("OnBuild") or []) + [step.expression]
        comment = "ONBUILD " + step.expression
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_cmd(self, step: ins.Cmd) -> None:
        cmd = list(step.args) if step.json_form else self.shell() + list(step.args)
        self.config["Cmd"] = cmd
        if step.args:
            self.state.cmd_set = True
        comment = f"CMD {go_quote_list(cmd)}"
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_entrypoint(self, step: ins.Entrypoint) -> None:
        if step.args is None:
            entrypoint: list[str] | None = None
        else:
            entrypoint = list(step.args) if step.json_form else self.shell() + list(step.args)
        self.config["Entrypoint"] = entrypoint
        if not self.state.cmd_set:
            self.config["Cmd"] = None
        comment = f"ENTRYPOINT {go_quote_list(entrypoint)}"
        await self.commit_metadata(comment, self.metadata_detail(step, comment))

    async def do_workdir(self, step: ins.Workdir) -> None:
        requested = self.expand(step.path)
        if not requested:
            raise InvalidParameter("cannot normalize nothing")
        current = self.config.get("WorkingDir") or "/"
        workdir = posixpath.normpath(requested if requested.startswith("/") else posixpath.join("/", current, requested))
        workdir = "/" + workdir.lstrip("/")
        self.config["WorkingDir"] = workdir
        comment = "WORKDIR " + workdir
        detail = self.metadata_detail(step, comment)
        probe = self.probe_config(self.shell() + ["#(nop) " + comment])
        key = await self.probe(probe, detail)
        if key is None:
            return
        parent = self.state.image_id
        fs = await self._image_fs(parent)
        missing = await asyncio.to_thread(_missing_dirs, fs, workdir)
        writer = (lambda out: _write_dirs(missing, fs, out)) if missing else None
        image_id = await self.host.derive(parent, writer, self.image_config(), probe, " ".join(probe["Cmd"]),
                                          self.state.author)
        await self.record(key, parent, image_id, detail)

    async def _image_fs(self, image_id: str) -> ImageFS:
        return await self.host.image_fs(image_id) if image_id else ImageFS([])

    # -- RUN ------------------------------------------------------------------------------
    def run_command(self, step: ins.Run) -> list[str]:
        if step.json_form:
            return list(step.args)
        text = step.args[0] if step.args else ""
        docs = step.heredocs
        if docs:
            bare = text.strip()
            only = len(docs) == 1 and re.fullmatch(r"\d*<<-?(['\"]?)" + re.escape(docs[0].name) + r"\1", bare)
            if only and docs[0].fd == 0:
                return self.shell() + [docs[0].content]
            script = text + "\n" + "".join(f"{d.content}{d.name}\n" for d in docs)
            return self.shell() + [script]
        return self.shell() + [text]

    async def do_run(self, step: ins.Run) -> None:
        cmd = self.run_command(step)
        env = env_dict(self.config)
        visible = self.state.args.visible(env)
        keyed = self.state.args.keyed(env)
        save_cmd = cmd
        if visible:
            save_cmd = [f"|{len(keyed)}", *sorted(f"{k}={v}" for k, v in keyed.items()), *cmd]
        probe = self.probe_config(save_cmd, drop_entrypoint=True)
        detail = Detail("RUN", " ".join(cmd), keyed, identity=step.text)
        key = await self.probe(probe, detail)
        if key is None:
            return
        parent = self.state.image_id
        if not parent:
            raise StepError(
                f"The command '{' '.join(cmd)}' cannot run: the stage starts FROM scratch and has no files yet"
            )
        body = container_config(self.config)
        body.update({
            "Image": parent, "Cmd": cmd, "Entrypoint": [""], "Healthcheck": {"Test": ["NONE"]},
            "Env": list(self.config.get("Env") or []) + [f"{k}={v}" for k, v in sorted(visible.items())],
            "AttachStdout": True, "AttachStderr": True, "OpenStdin": False, "StdinOnce": False, "Tty": False,
            "OnBuild": None,
        })
        from berth.builder.host import RunSpec

        containers: list[str] = []

        async def created(cid: str) -> None:
            containers.append(cid)
            self.build.containers.append(cid)
            await self.out.stream(f" ---> Running in {cid[:12]}\n")

        code = await self.host.run(RunSpec(body, self.build.host_config()), created, self.out.process)
        if code != 0:
            raise StepError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
        cid = containers[0]
        image_id = await self.host.commit(cid, self.image_config(), probe, " ".join(save_cmd), self.state.author)
        if self.build.request.rm or self.build.request.force_rm:
            # removed while the next steps run; the build waits for it before it reports success
            self.build.remove_later(cid)
            await self.out.stream(f"Removing intermediate container {cid[:12]}\n")
        await self.record(key, parent, image_id, detail)

    # -- COPY / ADD -----------------------------------------------------------------------
    async def do_copy(self, step: ins.Copy) -> None:
        cmd = "ADD" if step.is_add else "COPY"
        env = self.env()
        docs = {}
        for doc in step.heredocs:
            data = expand_text(doc.content, env, self.lexer.escape) if doc.expand else doc.content
            docs[doc.name] = data.encode()
        heredocs: dict[str, bytes] = {}
        sources: list[str] = []
        for word in step.sources:
            match = re.fullmatch(r"\d*<<-?(['\"]?)([^'\"]+)\1", word)
            if match and match.group(2) in docs:
                sources.append("<<" + match.group(2))
                heredocs["<<" + match.group(2)] = docs[match.group(2)]
            else:
                sources.append(self.lexer.process_word(word, env))
        dest = self.lexer.process_word(step.dest, env)
        chown = self.lexer.process_word(step.chown, env) if step.chown else ""
        if step.is_add:
            for source in sources:
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
                    raise InvalidParameter(f"ADD failed: remote sources ({source}) are not supported by berth yet")
        src: Source
        from_context = not step.from_
        if step.from_:
            src = await self._from_source(self.lexer.process_word(step.from_, env))
        else:
            src = ContextSource(self.build.context)
        plan = await asyncio.to_thread(copier.plan, src, sources, heredocs, step.is_add, cmd, from_context)
        chown_comment = f"--chown={chown}" if chown else ""
        comment = f"{cmd} {chown_comment}{plan.checksum} in {dest} "
        probe = self.probe_config(self.shell() + ["#(nop) " + comment])
        args = self.referenced_args(step.text)
        detail = Detail(cmd, f"{cmd} {' '.join(sources)} {dest}", args, plan.files, plan.complete, identity=step.text)
        key = await self.probe(probe, detail)
        if key is None:
            return
        parent = self.state.image_id
        fs = await self._image_fs(parent)
        owner = await asyncio.to_thread(_identity, fs, chown) if chown else copier.Identity(0, 0)
        chmod = int(step.chmod, 8) if step.chmod else None
        workdir = self.config.get("WorkingDir") or "/"
        image_id = await self.host.derive(
            parent, lambda out: copier.write_layer(plan, src, fs, dest, workdir, owner, chmod, cmd, out),
            self.image_config(), probe, " ".join(probe["Cmd"]), self.state.author,
        )
        await self.record(key, parent, image_id, detail)

    do_add = do_copy

    async def _from_source(self, name: str) -> Source:
        image_id = self.build.stage_image(name)
        label = f"stage {name}"
        if image_id is None:
            image_id = await self.build.image_for(name, "")
            label = f"image {name}"
        fs = await self._image_fs(image_id)
        return ImageSource(fs, label)


def _check_signal(sig: str) -> None:
    text = sig.upper()
    if text.isdigit():
        if 0 < int(text) < 65:
            return
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        if name in signals.Signals.__members__ or re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name):
            return
    raise InvalidParameter(f"Invalid signal: {sig}")


def _missing_dirs(fs: ImageFS, path: str) -> list[str]:
    """The directories of ``path`` the image lacks (resolved inside the image)."""
    resolved = fs.resolve(path)
    parts = [p for p in resolved.split("/") if p]
    missing = []
    for depth in range(1, len(parts) + 1):
        sub = "/" + "/".join(parts[:depth])
        info = fs.lstat(sub)
        if info is None:
            missing.append(sub)
        elif info.kind != "dir":
            raise InvalidParameter(f"mkdir {path}: {sub} is not a directory")
    return missing


def _write_dirs(missing: list[str], fs: ImageFS, out: Any) -> None:
    import tarfile

    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if not missing:
            return
        parts = [p for p in missing[-1].split("/") if p]
        for depth in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:depth])
            info = tarfile.TarInfo(sub.lstrip("/"))
            info.type = tarfile.DIRTYPE
            existing = fs.lstat(sub)
            if existing is not None and sub not in missing:
                info.mode, info.uid, info.gid, info.mtime = existing.mode, existing.uid, existing.gid, int(existing.mtime)
            else:
                info.mode, info.mtime = 0o755, now
            tar.addfile(info)


def _identity(fs: ImageFS, chown: str) -> copier.Identity:
    """``--chown=user[:group]``: names looked up in the image's /etc/passwd and /etc/group."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    uid = _lookup(fs, "/etc/passwd", user, "user")
    gid = _lookup(fs, "/etc/group", group, "group")
    return copier.Identity(uid, gid)


def _lookup(fs: ImageFS, path: str, name: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    data = fs.read_small(path)
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    verb = "uid" if what == "user" else "gid"
    raise InvalidParameter(
        f"unable to convert uid/gid chown string to host mapping: can't find {verb} for {what} {name}: "
        f"no such {what}: {name}"
    )


def parse_trigger(text: str, escape: str) -> ins.Instruction:
    """An ONBUILD trigger as an instruction (ONBUILD, FROM and MAINTAINER are refused)."""
    df = parse_dockerfile(text)
    if len(df.nodes) != 1:
        raise InvalidParameter("onbuild trigger should be a single expression")
    node = df.nodes[0]
    if node.keyword == "onbuild":
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if node.keyword in ("from", "maintainer"):
        raise InvalidParameter(f"{node.name} isn't allowed as an ONBUILD trigger")
    return ins.parse_instruction(node, escape)
