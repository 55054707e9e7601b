"""Build arguments: ``--build-arg`` values, ``ARG`` declarations and their scopes.

The model is the classic builder's ``BuildArgs``:

- an ``ARG`` before the first ``FROM`` is a *meta* argument: it can be used in ``FROM`` lines
  only, and inside a stage only after the stage declares it again (``ARG NAME``, which then
  takes the meta value unless ``--build-arg`` sets one);
- inside a stage an argument exists from its ``ARG`` line on; its value is the
  ``--build-arg`` value, else the ARG's default, else the meta argument's value;
- the proxy arguments (``HTTP_PROXY``, ``no_proxy``...) are visible to every RUN when given,
  without an ARG, and stay out of the cache key unless declared;
- a ``--build-arg`` nobody declared is reported at the end of the build::

    args = BuildArgs({"X": "42"})
    stage = args.stage()
    stage.declare("X", "default")
    stage.values()        # {"X": "42"}
"""

from __future__ import annotations

PROXY_ARGS = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)


class BuildArgs:
    def __init__(self, options: dict[str, str | None]) -> None:
        self.options = options
        self.meta: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def _option(self, name: str) -> str | None:
        return self.options.get(name)

    def declare_meta(self, name: str, default: str | None) -> None:
        value = self._option(name)
        self.meta[name] = value if value is not None else default
        self.referenced.add(name)

    def meta_env(self) -> dict[str, str]:
        """What a FROM line may expand: meta arguments and given proxy arguments."""
        env = {k: v for k in PROXY_ARGS if (v := self._option(k)) is not None}
        env.update({k: v for k, v in self.meta.items() if v is not None})
        return env

    def stage(self) -> StageArgs:
        return StageArgs(self)

    def unused(self) -> list[str]:
        return sorted(k for k in self.options if k not in self.referenced and k not in PROXY_ARGS)


class StageArgs:
    def __init__(self, parent: BuildArgs) -> None:
        self.parent = parent
        self.declared: dict[str, str | None] = {}

    def declare(self, name: str, default: str | None) -> None:
        self.declared[name] = default
        self.parent.referenced.add(name)

    def values(self) -> dict[str, str]:
        """Every argument visible here, with its value (unset ones are absent)."""
        out: dict[str, str] = {}
        for name in PROXY_ARGS:
            value = self.parent._option(name)
            if value is not None:
                out[name] = value
        for name, default in self.declared.items():
            value = self.parent._option(name)
            if value is None:
                value = default
            if value is None:
                value = self.parent.meta.get(name)
            if value is not None:
                out[name] = value
            else:
                out.pop(name, None)
        return out

    def visible(self, env: dict[str, str]) -> dict[str, str]:
        """The arguments a step sees: those an ENV of the same name does not hide."""
        return {k: v for k, v in self.values().items() if k not in env}

    def keyed(self, env: dict[str, str]) -> dict[str, str]:
        """The visible arguments that are part of a RUN's cache key (undeclared proxies are not)."""
        return {k: v for k, v in self.visible(env).items() if k in self.declared or k not in PROXY_ARGS}
