"""C types and calls on ``_ctypes`` alone: what :mod:`kernel` and :mod:`seccomp` need of ctypes.

The ``ctypes`` package builds dozens of types, checks their sizes with ``struct`` and imports
``types`` and ``ctypes._endian`` when it is imported: ~2.6 ms of CPU here, a tenth of a whole
``berth-runtime run``, for the handful of names libcontainer uses. The same objects come from
the C module ``_ctypes`` directly (``ctypes/__init__.py`` defines them there in the same way):
the simple types by their format letter, functions as ``CFuncPtr`` subclasses that save
``errno``, libraries by ``dlopen``. Values and structures are interchangeable with ctypes' own
(a ``Structure`` here is ``_ctypes.Structure``; ``c_char * n`` is a real ctypes array).

    libc = Library(None)
    mount = libc.function("mount", (c_char_p, c_char_p, c_char_p, c_ulong, c_char_p))
    if mount(b"none", b"/mnt", b"tmpfs", 0, None) < 0:
        err = get_errno()
"""

from __future__ import annotations

import _ctypes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ctypes import (
        POINTER,
        Structure,
        addressof,
        byref,
        c_byte,
        c_char,
        c_char_p,
        c_int,
        c_long,
        c_uint,
        c_uint64,
        c_ulong,
        c_ushort,
        c_void_p,
        get_errno,
        sizeof,
    )
    from typing import Any
else:
    Structure = _ctypes.Structure
    byref = _ctypes.byref
    addressof = _ctypes.addressof
    sizeof = _ctypes.sizeof
    POINTER = _ctypes.POINTER
    get_errno = _ctypes.get_errno

    # the simple types, by struct format letter, as ctypes/__init__.py defines them
    class c_int(_ctypes._SimpleCData):  # noqa: N801 -- ctypes' names
        _type_ = "i"

    class c_uint(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "I"

    class c_long(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "l"

    class c_ulong(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "L"

    class c_ushort(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "H"

    class c_uint64(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "Q"

    class c_byte(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "b"

    class c_char(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "c"

    class c_char_p(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "z"

    class c_void_p(_ctypes._SimpleCData):  # noqa: N801
        _type_ = "P"


c_uint32 = c_uint
c_size_t = c_ulong
_RTLD_NOW = 2

__all__ = [
    "POINTER",
    "Library",
    "Structure",
    "addressof",
    "byref",
    "c_byte",
    "c_char",
    "c_char_p",
    "c_int",
    "c_long",
    "c_size_t",
    "c_uint",
    "c_uint32",
    "c_uint64",
    "c_ulong",
    "c_ushort",
    "c_void_p",
    "create_string_buffer",
    "get_errno",
    "sizeof",
]


class _Function(_ctypes.CFuncPtr):
    """A C function returning int, saving errno after each call (ctypes' ``use_errno=True``)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _HoldingFunction(_ctypes.CFuncPtr):
    """As :class:`_Function`, called with the GIL held (ctypes' ``PyDLL``): the interpreter's own
    API, and a call whose child must find the GIL as its parent held it (a raw clone)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A shared library (``None``: the program itself, libc included), as ``ctypes.CDLL``."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._handle: int = _ctypes.dlopen(name, _RTLD_NOW)  # type: ignore[arg-type]  # None: ourselves; OSError

    def function(
        self, name: str, argtypes: tuple[Any, ...] | None = None, restype: Any = c_int, hold_gil: bool = False
    ) -> Any:
        """The library's function ``name`` (AttributeError when it has none); ``hold_gil``: called
        without releasing the GIL."""
        fn = (_HoldingFunction if hold_gil else _Function)((name, self))  # type: ignore[arg-type]  # any object with a _handle
        if argtypes is not None:
            fn.argtypes = argtypes
        fn.restype = restype
        return fn


def create_string_buffer(init: bytes | int, size: int | None = None) -> Any:
    """A mutable ``char`` array, as ``ctypes.create_string_buffer``: ``init`` bytes (and a NUL
    unless ``size`` says otherwise), or ``init`` zero bytes."""
    buf: Any
    if isinstance(init, int):
        return (c_char * init)()
    buf = (c_char * (len(init) + 1 if size is None else size))()
    buf.raw = init  # ValueError when longer than size, as ctypes
    return buf
