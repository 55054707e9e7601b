"""Requests are values: a job's request is a frozen dataclass, its type names the job.

Each request type says its job's name (``JOB``) and, through its generic parameter, the type of
the job's result. A front end (the Docker API, later the CRI) builds a request; the engine picks
the handler registered for the request's type; the handler reads fields::

    @dataclass(frozen=True)
    class ContainerStart(Request[None]):
        JOB: ClassVar[str] = "container.start"
        id: str

    await engine.job(ContainerStart(id="web"))      # -> None, as the type says

Every request type is known by its job name (:func:`request_type`), so the older call style
``engine.job("container.start", id="web")`` builds the same request. ``berth jobs`` shows a
request's fields briefly (:func:`brief_args`): strings cut at 80 characters, numbers and
booleans as they are, anything else (configs, credentials, events) as its type's name only, so
no secret or large document is ever listed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Generic, TypeVar

R = TypeVar("R", covariant=True)

_BY_NAME: dict[str, type[Request[Any]]] = {}


class Request(Generic[R]):
    """Base of every job request; subclasses are frozen dataclasses that set ``JOB``."""

    JOB: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("JOB", "")
        if not name:
            return  # an abstract intermediate class
        other = _BY_NAME.get(name)
        if other is not None and other.__qualname__ != cls.__qualname__:
            raise TypeError(f"job {name!r}: already the name of {other.__module__}.{other.__qualname__}")
        _BY_NAME[name] = cls

    @property
    def job_name(self) -> str:
        return type(self).JOB

    def args(self) -> dict[str, Any]:
        """The fields by name (what a handler of the older style reads as ``job.args``)."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__qualname__} is not a dataclass")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def request_type(name: str) -> type[Request[Any]] | None:
    """The request type of the job ``name``, if one was defined (imported)."""
    return _BY_NAME.get(name)


def request_types() -> dict[str, type[Request[Any]]]:
    """Every request type defined so far, by job name."""
    return dict(_BY_NAME)


def build(name: str, args: dict[str, Any]) -> Request[Any] | None:
    """The request of job ``name`` from keyword arguments (the older call style); None when the
    job has no request type. A keyword the type lacks is a programming error that names it."""
    kind = _BY_NAME.get(name)
    if kind is None:
        return None
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"job {name}: {kind.__qualname__} is not a dataclass")
    fields = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(args) - fields)
    if unknown:
        raise TypeError(
            f"job {name}: {kind.__module__}.{kind.__qualname__} has no field {', '.join(unknown)} "
            f"(fields: {', '.join(sorted(fields)) or 'none'})"
        )
    return kind(**args)


def brief(value: Any) -> Any:
    """A value as ``berth jobs`` shows it: small scalars as they are, the rest by type name."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    return type(value).__name__


def brief_args(args: dict[str, Any]) -> dict[str, Any]:
    """Arguments as ``berth jobs`` shows them; a name starting with ``_`` is private (not shown)."""
    return {k: brief(v) for k, v in args.items() if not k.startswith("_")}
