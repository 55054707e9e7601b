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

RUN lives in :mod:`berth.builder.runstep`, COPY/ADD/WORKDIR in :mod:`berth.builder.copystep`.

Before committing, every step probes the cache (parent + probe config); the first miss in a
stage says why and stops probing for the rest of the stage, as dockerd does.
"""

from __future__ import annotations

import asyncio
import re
import signal as signals
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from berth.builder import copystep, runstep
from berth.builder import instructions as ins
from berth.builder.cache import Detail, cache_key
from berth.builder.imagefs import ImageFS
from berth.builder.parser import parse as parse_dockerfile
from berth.builder.shell import Lexer
from berth.builder.stage import StageState, StepError, env_dict
from berth.builder.words import go_quote_list
from berth.errors import BerthError, InvalidParameter
from berth.graph.changes import expand_port
from berth.graph.image import container_config

if TYPE_CHECKING:
    from berth.builder.build import Build

DEFAULT_SHELL = ["/bin/sh", "-c"]
_VAR_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


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
        sources = self.build.cache_sources
        if cached is not None and sources is not None and cached not in sources:
            reason = "not from an image --cache-from names"
        elif cached is not None:
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
        await copystep.workdir(self, step)

    async def do_run(self, step: ins.Run) -> None:
        await runstep.run(self, step)

    async def do_copy(self, step: ins.Copy) -> None:
        await copystep.copy(self, step)

    do_add = do_copy

    async def image_fs(self, image_id: str) -> ImageFS:
        return await self.host.image_fs(image_id) if image_id else ImageFS([])


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
