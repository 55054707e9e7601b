"""A build: the Dockerfile's stages run one after another, each step as a job, into one image.

The model is the classic builder's ``dispatchDockerfileWithCancellation``:

1. the instructions are parsed and checked first (an error is a 400 before any output);
   ``ARG`` lines before the first ``FROM`` are meta arguments; each ``FROM`` opens a stage;
   ``--target`` cuts the stages after the named one; ``--label`` adds one ``LABEL`` step per
   label (sorted, not expanded) at the end of the last stage;
2. steps are numbered across the whole file (``Step 3/7 : RUN ...``); each FROM resolves a
   stage name, ``scratch``, or an image (pulled when missing, or always with ``--pull``),
   runs the base image's ONBUILD triggers, and each instruction is dispatched
   (:mod:`berth.builder.dispatch`) as a ``build.step`` job, printing `` ---> <id>``;
3. after each stage the stream carries ``{"aux": {"ID": ...}}``; at the end come the unused
   ``--build-arg`` warning, ``Successfully built <id>`` and one ``Successfully tagged`` per tag.

Intermediate containers are removed after each RUN (``rm``, the default) and, when the build
fails, also the failed one with ``force_rm``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from berth.builder import instructions as ins
from berth.builder.buildargs import BuildArgs
from berth.builder.context import BuildContext
from berth.builder.dispatch import Dispatcher, parse_trigger
from berth.builder.host import BuildHost
from berth.builder.output import Output
from berth.builder.parser import Dockerfile, DockerfileError, Node
from berth.builder.request import BuildRequest
from berth.builder.shell import Lexer
from berth.builder.stage import StageState, begin_config
from berth.errors import BerthError, InvalidParameter

log = logging.getLogger("berth.builder")


@dataclass
class Stage:
    from_: ins.From
    commands: list[ins.Instruction] = field(default_factory=list)


def plan_stages(dockerfile: Dockerfile, request: BuildRequest) -> tuple[list[ins.Arg], list[Stage]]:
    """Meta arguments and stages; every instruction checked; target and labels applied."""
    metas: list[ins.Arg] = []
    stages: list[Stage] = []
    if not dockerfile.nodes:
        raise InvalidParameter(f"the Dockerfile ({request.dockerfile}) cannot be empty")
    for node in dockerfile.nodes:
        step = ins.parse_instruction(node, dockerfile.escape)
        if isinstance(step, ins.From):
            stages.append(Stage(step))
        elif not stages:
            if isinstance(step, ins.Arg):
                metas.append(step)
            else:
                raise DockerfileError(node.start_line, "no build stage in current context", node.keyword)
        else:
            stages[-1].commands.append(step)
    if not stages:
        raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
    seen: set[str] = set()
    for stage in stages:
        name = stage.from_.stage_name
        if name:
            if name in seen:
                raise DockerfileError(stage.from_.line, f"duplicate name {name}", "from")
            seen.add(name)
    if request.target:
        target = request.target.lower()
        for index, stage in enumerate(stages):
            if stage.from_.stage_name == target:
                stages = stages[: index + 1]
                break
        else:
            raise InvalidParameter(f"failed to reach build target {request.target} in Dockerfile")
    for key, value in sorted(request.labels):
        text = f"LABEL {key}={value}"
        node = Node("label", f"{key}={value}", text, 0, 0)
        stages[-1].commands.append(ins.Label(node, ((key, value),), expand=False))
    return metas, stages


class Build:
    def __init__(self, request: BuildRequest, dockerfile: Dockerfile, context: BuildContext, host: BuildHost,
                 out: Output) -> None:
        self.request = request
        self.dockerfile = dockerfile
        self.context = context
        self.host = host
        self.out = out
        self.args = BuildArgs(request.args)
        self.stages_by_name: dict[str, str] = {}
        self.stages_by_index: list[str] = []
        self.containers: list[str] = []  # intermediate containers not yet removed
        self.removals: list[asyncio.Task[None]] = []
        self.lexer = Lexer(dockerfile.escape)
        self.cache_sources: set[str] | None = None  # with cachefrom: the images a hit may come from

    async def resolve_cache_sources(self) -> None:
        """As dockerd's classic builder: with ``cachefrom``, a cached step counts only when its
        image is one of those images or an ancestor of one (names it cannot find are skipped)."""
        if not self.request.cache_from:
            return
        sources: set[str] = set()
        for ref in self.request.cache_from:
            image_id = await self.host.find_image(ref)
            while image_id and image_id not in sources:
                sources.add(image_id)
                image_id = await self.host.image_parent(image_id)
        self.cache_sources = sources

    def host_config(self) -> dict[str, Any]:
        r = self.request
        hc: dict[str, Any] = {"NetworkMode": r.network_mode or "default",
                              "LogConfig": {"Type": "json-file", "Config": {}}}
        if r.extra_hosts:
            hc["ExtraHosts"] = list(r.extra_hosts)
        for key, value in (("Memory", r.memory), ("MemorySwap", r.memory_swap), ("CpuShares", r.cpu_shares),
                           ("CpuPeriod", r.cpu_period), ("CpuQuota", r.cpu_quota), ("ShmSize", r.shm_size)):
            if value:
                hc[key] = value
        if r.cpuset_cpus:
            hc["CpusetCpus"] = r.cpuset_cpus
        return hc

    def remove_later(self, cid: str) -> None:
        """Remove an intermediate container in the background (:meth:`settle` waits for it)."""

        async def remove() -> None:
            await self.host.remove_container(cid)
            self.containers.remove(cid)

        self.removals.append(asyncio.ensure_future(remove()))

    async def settle(self) -> None:
        """Wait for the background removals; one that failed is logged (its container stays)."""
        removals, self.removals = self.removals, []
        for result in await asyncio.gather(*removals, return_exceptions=True):
            if isinstance(result, BerthError):
                log.warning("remove an intermediate container: %s", result.message)
            elif isinstance(result, BaseException):
                raise result

    def stage_image(self, name: str) -> str | None:
        """A previous stage's image, by name or index."""
        if name.lower() in self.stages_by_name:
            return self.stages_by_name[name.lower()]
        if name.isdigit() and int(name) < len(self.stages_by_index):
            return self.stages_by_index[int(name)]
        return None

    async def image_for(self, name: str, platform: str) -> str:
        """A local image, pulled when missing (always with ``--pull``)."""
        if not self.request.pull:
            found = await self.host.find_image(name)
            if found is not None:
                return found
        return await self.host.pull(name, platform or self.request.platform, self.request.registry_auth,
                                    self.out.raw)

    async def run(self) -> str:
        metas, stages = plan_stages(self.dockerfile, self.request)
        await self.resolve_cache_sources()
        total = len(metas) + sum(1 + len(stage.commands) for stage in stages)
        number = 0

        async def step_line(text: str) -> str:
            nonlocal number
            number += 1
            await self.out.stream(f"Step {number}/{total} : {text}")
            await self.out.stream("\n")
            return f"{number}/{total}"

        for meta in metas:
            await step_line(meta.text)
            for name, default in meta.args:
                value = self.lexer.process_word(default, self.args.meta_env()) if default is not None else None
                self.args.declare_meta(name, value)
        state: StageState | None = None
        for index, stage in enumerate(stages):
            state = await self._stage(stage, index, step_line)
        await self.settle()
        unused = self.args.unused()
        if unused:
            await self.out.stream(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if state is None or not state.image_id:
            raise BerthError("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    async def _stage(self, stage: Stage, index: int, step_line: Callable[[str], Awaitable[str]]) -> StageState:
        label = await step_line(stage.from_.text)

        async def begin() -> StageState:
            return await self.begin(stage, index)

        state = await self.host.step(label, stage.from_.text, begin)
        for command in stage.commands:
            label = await step_line(command.text)
            dispatcher = Dispatcher(self, state)

            async def work(c: ins.Instruction = command, d: Dispatcher = dispatcher) -> None:
                await d.dispatch(c)

            await self.host.step(label, command.text, work)
            await self.out.stream(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")
        if state.image_id:
            await self.out.aux({"ID": state.image_id})
        if state.name:
            self.stages_by_name[state.name] = state.image_id
        self.stages_by_index.append(state.image_id)
        return state

    async def begin(self, stage: Stage, index: int) -> StageState:
        step = stage.from_
        meta_env = self.args.meta_env()
        name = self.lexer.process_word(step.image, meta_env)
        if not name:
            raise InvalidParameter(f"base name ({step.image}) should not be blank")
        platform = self.lexer.process_word(step.platform, meta_env) if step.platform else ""
        image_id = self.stages_by_name.get(name.lower())
        if image_id is None:
            image_id = "" if name == "scratch" else await self.image_for(name, platform)
        doc = await self.host.image_config(image_id) if image_id else {}
        state = StageState(step.stage_name, index, image_id, begin_config(doc.get("config")),
                           self.args.stage(), base=name)
        triggers = list(state.config.get("OnBuild") or [])
        state.config["OnBuild"] = None
        if triggers:
            word = "trigger" if len(triggers) == 1 else "triggers"
            await self.out.stream(f"# Executing {len(triggers)} build {word}\n")
            dispatcher = Dispatcher(self, state)
            for trigger in triggers:
                await dispatcher.dispatch(parse_trigger(trigger, self.dockerfile.escape))
        await self.out.stream(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")
        return state

    async def cleanup(self, failed: bool) -> None:
        """Remove the intermediate containers a failed build leaves (``force_rm``)."""
        await self.settle()
        if not (failed and self.request.force_rm):
            return
        for cid in list(self.containers):
            try:
                await self.host.remove_container(cid)
                await self.out.stream(f"Removing intermediate container {cid[:12]}\n")
            except BerthError as exc:
                log.warning("remove intermediate container %s: %s", cid[:12], exc)
            except ConnectionError:
                continue  # the client went away; the container is removed all the same
            self.containers.remove(cid)
