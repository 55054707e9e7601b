"""``ADD <url>``: the file is downloaded by the daemon, as dockerd's classic builder does.

The model (moby's ``builder/remotecontext`` download): a GET that follows redirects and must end
in a 200; the file's name is the last segment of the URL's path, or, when the path ends in ``/``,
the ``filename`` of ``Content-Disposition``; its mode is 0600 and its mtime the ``Last-Modified``
time (0 without one); it is never unpacked. The body is streamed into ``tmp_dir``; the step's
cache key is its content, so every build downloads it again::

    got = await download("http://127.0.0.1:8000/app.tar.gz", tmp_dir)
    got.path, got.name, got.mtime
"""

from __future__ import annotations

import email.utils
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from berth.errors import InvalidParameter

URL_RE = re.compile(r"^https?://", re.IGNORECASE)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Downloaded:
    path: Path
    name: str
    mtime: float
    size: int


def is_url(source: str) -> bool:
    return URL_RE.match(source) is not None


def filename(url: str, disposition: str) -> str:
    path = unquote(urlsplit(url).path)
    name = posixpath.basename(path)
    if not name or path.endswith("/"):
        match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition or "")
        name = posixpath.basename(unquote(match.group(1))) if match else ""
    if not name or name in (".", ".."):
        raise InvalidParameter(f"cannot determine filename from url: {url}")
    return name


async def download(url: str, tmp_dir: Path) -> Downloaded:
    import aiohttp

    fd, tmp = tempfile.mkstemp(prefix="add-", dir=tmp_dir)
    path = Path(tmp)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
                    if resp.status != 200:
                        body = (await resp.content.read(512)).decode("utf-8", "replace").strip()
                        raise InvalidParameter(
                            f"failed to GET {url} with status {resp.status} {resp.reason}: {body}"
                        )
                    name = filename(str(resp.url), resp.headers.get("Content-Disposition", ""))
                    modified = resp.headers.get("Last-Modified", "")
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        out.write(chunk)
                        size += len(chunk)
            except aiohttp.ClientError as exc:
                raise InvalidParameter(f"failed to GET {url}: {exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    mtime = 0.0
    if modified:
        try:
            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            mtime = 0.0
    os.chmod(path, 0o600)
    return Downloaded(path, name, mtime, size)
