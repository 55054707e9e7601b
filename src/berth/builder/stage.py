"""A stage's state while it is dispatched, and what a failed step raises.

    state = StageState(name="builder", index=0, image_id="sha256:...", config=begin_config(base_config),
                       args=build_args.stage())
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from berth.builder.buildargs import StageArgs
from berth.errors import BerthError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
