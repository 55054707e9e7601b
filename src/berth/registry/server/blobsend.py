"""Sending a blob's bytes: read in pieces and written into the socket, not sendfile(2).

``BlobResponse`` is aiohttp's ``FileResponse`` (conditional requests, ``Range``/``If-Range``,
``Content-Length``, ``Last-Modified``: all its own) with another way of moving the body. aiohttp
hands a plain TCP socket to ``loop.sendfile``, and sendfile gives the socket the file's page-cache
pages by reference; a client on the same host then copies its bytes straight out of those pages,
a 35 MB layer swept once, cold. Measured with skopeo copying a 6 x 35 MB image to a directory over
loopback (docs/benchmarks-registry.md): skopeo used 5–10% more CPU receiving from berth's sendfile
than from the CNCF registry, which writes its bytes into the socket, and the copy is one stream
bound by skopeo's own core. Here the server reads a piece (``CHUNK``) and writes it into the socket,
so the client copies from the socket's own recently written buffers, as it does from the CNCF
registry.

The loop never waits for the disk: each piece is read with ``RWF_NOWAIT`` (only what the page cache
holds); a piece that is not cached is read in a thread. (sendfile read uncached pages on the loop.)
The transport's write buffer limits are lowered to (next to) nothing while the body goes out, so a piece is
written only once the previous one has left the transport entirely: a client that stops reading
holds at most one piece of this process's memory, and the transport rarely has to copy a leftover.
Works the same over TLS (aiohttp's own path there read every piece in a thread).

    return BlobResponse(store.blob_path(digest), headers=headers)
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import IO, Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

CHUNK = 256 * 1024


def read_piece(fd: int, offset: int, size: int) -> bytearray | None:
    """Up to ``size`` bytes at ``offset`` that the page cache holds, or None when it holds none."""
    buf = bytearray(size)
    try:
        n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno != errno.EOPNOTSUPP:  # a file system without RWF_NOWAIT: read it in a thread
            raise
        return None
    del buf[n:]
    return buf


def read_piece_blocking(fd: int, offset: int, size: int) -> bytearray:
    buf = bytearray(size)
    n = os.preadv(fd, [buf], offset)
    del buf[n:]
    return buf


class BlobResponse(web.FileResponse):
    async def _sendfile(self, request: BaseRequest, fobj: IO[Any], offset: int, count: int) -> AbstractStreamWriter:
        # FileResponse.prepare calls this once it has chosen the status, headers and byte range
        writer = await web.StreamResponse.prepare(self, request)  # sends the headers
        assert writer is not None
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        low, high = transport.get_write_buffer_limits()
        # paused while anything is buffered, resumed once nothing is: high=1, not 0, since the SSL
        # transport pauses at size >= high, so that 0 would keep it paused for good
        transport.set_write_buffer_limits(high=1, low=0)
        try:
            fd = fobj.fileno()
            while count > 0:
                size = min(CHUNK, count)
                piece = read_piece(fd, offset, size)
                if not piece:
                    piece = await asyncio.to_thread(read_piece_blocking, fd, offset, size)
                    if not piece:  # shorter than its size: end the connection, not the response
                        raise OSError(errno.EIO, f"blob file {self._path.name} ends at {offset}")
                await writer.write(piece)  # returns once the transport holds nothing more
                offset += len(piece)
                count -= len(piece)
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
        await web.StreamResponse.write_eof(self)
        return writer
