"""RUN: the step's container, as the classic builder makes it.

The command is the JSON form as written, or the stage's shell with the text (a RUN whose command
is one heredoc runs the heredoc's body; other heredocs go to the shell with the command line).
The container gets the stage's run config, its Env plus the build arguments it can see, no
entrypoint and no healthcheck; its history line and cache key prefix the command with the
arguments that are part of the key (``|1 X=42 /bin/sh -c make``). A non-zero exit fails the
build with dockerd's text and code; a successful one is committed (the image keeps the stage's
config, not the command) and the container removed in the background.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from berth.builder import instructions as ins
from berth.builder.cache import Detail
from berth.builder.host import RunSpec
from berth.builder.stage import StepError, env_dict
from berth.graph.image import container_config

if TYPE_CHECKING:
    from berth.builder.dispatch import Dispatcher


def run_command(d: Dispatcher, step: ins.Run) -> list[str]:
    if step.json_form:
        return list(step.args)
    text = step.args[0] if step.args else ""
    docs = step.heredocs
    if docs:
        bare = text.strip()
        only = len(docs) == 1 and re.fullmatch(r"\d*<<-?(['\"]?)" + re.escape(docs[0].name) + r"\1", bare)
        if only and docs[0].fd == 0:
            return d.shell() + [docs[0].content]
        script = text + "\n" + "".join(f"{d.content}{d.name}\n" for d in docs)
        return d.shell() + [script]
    return d.shell() + [text]

async def run(d: Dispatcher, step: ins.Run) -> None:
    cmd = run_command(d, step)
    env = env_dict(d.config)
    visible = d.state.args.visible(env)
    keyed = d.state.args.keyed(env)
    save_cmd = cmd
    if visible:
        save_cmd = [f"|{len(keyed)}", *sorted(f"{k}={v}" for k, v in keyed.items()), *cmd]
    probe = d.probe_config(save_cmd, drop_entrypoint=True)
    detail = Detail("RUN", " ".join(cmd), keyed, identity=step.text)
    key = await d.probe(probe, detail)
    if key is None:
        return
    parent = d.state.image_id
    if not parent:
        raise StepError(
            f"The command '{' '.join(cmd)}' cannot run: the stage starts FROM scratch and has no files yet"
        )
    body = container_config(d.config)
    body.update({
        "Image": parent, "Cmd": cmd, "Entrypoint": [""], "Healthcheck": {"Test": ["NONE"]},
        "Env": list(d.config.get("Env") or []) + [f"{k}={v}" for k, v in sorted(visible.items())],
        "AttachStdout": True, "AttachStderr": True, "OpenStdin": False, "StdinOnce": False, "Tty": False,
        "OnBuild": None,
    })

    containers: list[str] = []

    async def created(cid: str) -> None:
        containers.append(cid)
        d.build.containers.append(cid)
        await d.out.stream(f" ---> Running in {cid[:12]}\n")

    code = await d.host.run(RunSpec(body, d.build.host_config()), created, d.out.process)
    if code != 0:
        raise StepError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
    cid = containers[0]
    image_id = await d.host.commit(cid, d.image_config(), probe, " ".join(save_cmd), d.state.author)
    if d.build.request.rm or d.build.request.force_rm:
        # removed while the next steps run; the build waits for it before it reports success
        d.build.remove_later(cid)
        await d.out.stream(f"Removing intermediate container {cid[:12]}\n")
    await d.record(key, parent, image_id, detail)
