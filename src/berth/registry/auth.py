"""Registry credentials and the two challenge flows a registry may ask for (client side).

The docker CLI sends credentials in ``X-Registry-Auth`` (base64url JSON of Docker's AuthConfig:
username, password, identitytoken, registrytoken, serveraddress). A registry answers 401 with
``WWW-Authenticate``: ``Basic realm=...`` (send the credentials), or ``Bearer realm=...,service=...,
scope=...`` (ask the realm for a token, with the credentials if any, then send the token).
Tokens are kept per scope until they expire::

    creds = Credentials.from_header(request.headers.get("X-Registry-Auth", ""))
    auth = Authenticator(creds)
    header = await auth.authorize(session, challenge_header, "repository:library/busybox:pull")
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from berth.errors import InvalidParameter, Unauthorized

if TYPE_CHECKING:
    import aiohttp

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @classmethod
    def from_header(cls, header: str) -> Credentials:
        """Decode ``X-Registry-Auth`` (empty, ``e30=`` = ``{}``, or a base64url JSON AuthConfig)."""
        if not header:
            return cls()
        try:
            std = header.strip().replace("-", "+").replace("_", "/")
            raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
            doc = json.loads(raw) if raw.strip() else {}
        except (binascii.Error, ValueError, RecursionError):
            raise InvalidParameter("invalid X-Registry-Auth header: not base64url-encoded JSON") from None
        if not isinstance(doc, dict):
            raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
        user, password = _str(doc, "username"), _str(doc, "password")
        if not user and _str(doc, "auth"):
            try:
                user, _, password = base64.b64decode(_str(doc, "auth")).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidParameter("invalid X-Registry-Auth header: bad auth field") from None
        return cls(user, password, _str(doc, "identitytoken"), _str(doc, "registrytoken"))

    @property
    def empty(self) -> bool:
        return not (self.username or self.identity_token or self.registry_token)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __repr__(self) -> str:  # never print a password
        return f"Credentials(username={self.username!r})"


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge | None:
        scheme, _, rest = header.strip().partition(" ")
        if not scheme:
            return None
        params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
                  for m in _PARAM.finditer(rest)}
        return cls(scheme.lower(), params)


class Authenticator:
    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (header, expiry)

    def cached(self, scope: str) -> str | None:
        hit = self._tokens.get(scope)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    async def authorize(self, session: aiohttp.ClientSession, header: str, scope: str) -> str:
        """The Authorization header to retry with after a 401 carrying ``header``."""
        challenge = Challenge.parse(header)
        if challenge is None:
            raise Unauthorized("authentication required: the registry sent no usable challenge")
        if challenge.scheme == "basic":
            if self.creds.empty:
                raise Unauthorized("authentication required: no basic auth credentials")
            return self.creds.basic()
        if challenge.scheme != "bearer":
            raise Unauthorized(f"authentication required: unsupported scheme {challenge.scheme!r}")
        if self.creds.registry_token:
            return "Bearer " + self.creds.registry_token
        token, lifetime = await self._fetch_token(session, challenge, scope)
        value = "Bearer " + token
        self._tokens[scope] = (value, time.monotonic() + max(10.0, lifetime - 10.0))
        return value

    async def _fetch_token(self, session: aiohttp.ClientSession, challenge: Challenge, scope: str) -> tuple[str, float]:
        import aiohttp

        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise Unauthorized(f"authentication required: bad token realm {realm[:200]!r}")
        query = {"service": challenge.params.get("service", "")}
        if scope:
            query["scope"] = scope
        headers = {}
        if self.creds.username:
            headers["Authorization"] = self.creds.basic()
            query["account"] = self.creds.username
        try:
            async with session.get(realm, params=query, headers=headers) as resp:
                body = await resp.content.read(1 << 20)
                if resp.status in (401, 403):
                    raise Unauthorized(
                        f"Get \"{realm}\": unauthorized: incorrect username or password"
                        if self.creds.username else f"Get \"{realm}\": unauthorized: authentication required"
                    )
                if resp.status != 200:
                    raise Unauthorized(f"token request to {realm} answered {resp.status}")
        except aiohttp.ClientError as exc:
            raise Unauthorized(f"Get \"{realm}\": {exc}") from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise Unauthorized(f"token request to {realm}: answer is not JSON") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise Unauthorized(f"token request to {realm}: no token in the answer")
        lifetime = doc.get("expires_in", 60)
        return token, float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 60.0
