"""Frozen records: what ``@dataclass(frozen=True)`` gives the spec types, without ``dataclasses``.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize`` ...) and generates
and compiles code for every class it decorates; for the modules a ``berth-runtime run`` loads
that was a fifth of its whole CPU time. :func:`record` reads the class's annotations once and
shares one generic ``__init__``/``__eq__``/``__hash__``/``__repr__`` (records are built a few
times per container, so their speed is not the point). Type checkers treat it as a frozen
dataclass (``dataclass_transform``)::

    @record
    class Mount:
        type: str
        options: tuple[str, ...] = ()
        user: User = field(default_factory=User)

    m = Mount("bind", ("ro",)); replace(m, type="tmpfs"); asdict(m)
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> Callable[[T], T]:
        return lambda f: f


_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A default made anew for each record (``dataclasses.field(default_factory=...)``)."""
    return _Factory(default_factory)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = tuple(cls.__dict__.get(n, _MISSING) for n in names)
    for n, d in zip(names, defaults, strict=True):
        if d is not _MISSING:
            delattr(cls, n)  # the instance's value, never the class's
    cls._fields = names  # type: ignore[attr-defined]
    cls._defaults = defaults  # type: ignore[attr-defined]
    cls.__init__ = _init  # type: ignore[method-assign]
    cls.__setattr__ = _frozen  # type: ignore[method-assign]
    cls.__delattr__ = _frozen  # type: ignore[method-assign]
    cls.__eq__ = _eq  # type: ignore[method-assign]
    cls.__hash__ = _hash  # type: ignore[method-assign]
    cls.__repr__ = _repr  # type: ignore[method-assign]
    return cls


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    names, defaults = self._fields, self._defaults
    if len(args) > len(names):
        raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, {len(args)} given")
    for i, name in enumerate(names):
        if i < len(args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for {name!r}")
            value = args[i]
        elif name in kwargs:
            value = kwargs.pop(name)
        else:
            value = defaults[i]
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            if isinstance(value, _Factory):
                value = value.make()
        object.__setattr__(self, name, value)
    if kwargs:  # what no field took
        raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(kwargs)}")


def _frozen(self: Any, name: str, *_: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in self._fields)


def _eq(self: Any, other: object) -> bool:
    if type(other) is not type(self):
        result: bool = NotImplemented
        return result
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"


def replace(obj: T, **changes: Any) -> T:
    """A copy with some fields changed (``dataclasses.replace``)."""
    values = {n: getattr(obj, n) for n in obj._fields}  # type: ignore[attr-defined]
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no fields {sorted(unknown)}")
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: Any) -> dict[str, Any]:
    """The fields as a dict, records inside converted too (``dataclasses.asdict``)."""
    out: dict[str, Any] = {}
    for n in obj._fields:
        v = getattr(obj, n)
        out[n] = asdict(v) if hasattr(v, "_fields") and hasattr(type(v), "_defaults") else v
    return out
