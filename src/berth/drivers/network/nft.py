"""Applying nftables command buffers: libnftables in-process, or the ``nft`` binary.

A buffer (``nft -f`` syntax) is one kernel transaction: all of it applies or none does. The
library is what ``nft`` itself is built on (Debian's ``libnftables1``, a dependency of the
``nftables`` package); calling it in-process costs ~1 ms where starting ``nft`` costs 15–40 ms on
these machines, which matters on the ``run -p`` path. It is loaded with ctypes because no Python
binding is installable from PyPI (Debian's ``python3-nftables`` is the same ctypes wrapper, outside
the virtualenv). Calls run on one dedicated thread: a libnftables context is not thread safe, and
a transaction must not wait on the event loop.

    nft = Nft(); await nft.run("add table ip berth-x"); await nft.run("delete table ip berth-x")
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from berth.errors import SystemFailure

log = logging.getLogger(__name__)
NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4


class _Lib:
    def __init__(self) -> None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        lib = ctypes.CDLL(name, use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        for fn in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        for fn in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
            getattr(lib, fn).restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        self.lib = lib
        self.ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not self.ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, cmd: str, json_output: bool = False) -> tuple[int, str, str]:
        self.lib.nft_ctx_output_set_flags(self.ctx, NFT_CTX_OUTPUT_JSON if json_output else 0)
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, cmd.encode())
        out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode(errors="replace")
        err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
        return rc, out, err

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)
            self.ctx = None


class Nft:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="berth-nft")
        self._lib: _Lib | None = None
        self._binary = shutil.which("nft") or "/usr/sbin/nft"
        self._tried = False

    def _run_sync(self, cmd: str, json_output: bool) -> tuple[int, str, str]:
        if not self._tried:
            self._tried = True
            try:
                self._lib = _Lib()
            except OSError as exc:
                log.info("libnftables not usable (%s); using %s", exc, self._binary)
        if self._lib is not None:
            return self._lib.run(cmd, json_output)
        argv = [self._binary] + (["-j"] if json_output else []) + ["-f", "-"]
        try:
            r = subprocess.run(argv, input=cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SystemFailure(f"run {self._binary}: {exc}") from exc
        return r.returncode, r.stdout, r.stderr

    async def run(self, cmd: str, json_output: bool = False, what: str = "apply nftables rules") -> str:
        """Apply ``cmd`` as one transaction; its output. SystemFailure with nft's message."""
        loop = asyncio.get_running_loop()
        rc, out, err = await loop.run_in_executor(self._pool, self._run_sync, cmd, json_output)
        if rc != 0:
            first = " ".join(line.strip() for line in err.strip().splitlines()[:3])
            raise SystemFailure(f"{what}: {first or 'nft failed'}")
        return out

    def run_blocking(self, cmd: str) -> tuple[int, str]:
        """For shutdown paths without a loop: (status, error text)."""
        rc, _out, err = self._pool.submit(self._run_sync, cmd, False).result()
        return rc, err

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._lib is not None:
            self._lib.close()
            self._lib = None
