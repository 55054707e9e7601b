"""Who may do what on berth's registry server: none, htpasswd basic auth, or bearer tokens.

- ``NoAuth``: everything is allowed (a registry on 127.0.0.1 for tests and local work).
- ``BasicAuth``: every request needs a user of the htpasswd file (bcrypt entries, as
  ``htpasswd -B`` writes them and the CNCF registry reads them).
- ``TokenAuth``: Docker Hub's flow. A request without a valid token gets ``401`` with
  ``WWW-Authenticate: Bearer realm="<this server>/token",service="...",scope="repository:NAME:pull"``;
  the client asks the realm for a token (anonymously, or with basic credentials) and retries
  with ``Authorization: Bearer <token>``. Tokens are signed here with HMAC-SHA256 under a key
  kept in the registry root; clients treat them as opaque, so no public-key machinery is needed.
  Anonymous clients get ``pull`` only when ``anonymous_pull`` is set; users get what they ask.

    auth = TokenAuth(users, key, service="berth-registry", anonymous_pull=True)
    await auth.require(request, [Access("repository", "library/busybox", "pull")])
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from berth.errors import InvalidParameter
from berth.registry.server.errors import RegistryError

TOKEN_LIFETIME = 300  # seconds, as Docker Hub's


@dataclass(frozen=True)
class Access:
    type: str  # "repository" or "registry"
    name: str  # the repository, or "catalog"
    action: str  # "pull", "push", "delete", "*"

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{self.action}"


class Htpasswd:
    """Users from an htpasswd file with bcrypt hashes; verified passwords are remembered."""

    def __init__(self, path: Path) -> None:
        self.users: dict[str, bytes] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise InvalidParameter(f"htpasswd {path}:{lineno}: only bcrypt entries are supported (htpasswd -B)")
            self.users[user] = ("$2b$" + hashed[4:]).encode()
        self._ok: set[tuple[str, bytes]] = set()

    async def verify(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        if key in self._ok:
            return True
        import bcrypt  # only a server with users pays for the import

        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        if ok:
            self._ok.add(key)
        return ok


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class NoAuth:
    async def require(self, request: web.Request, needed: list[Access]) -> None:
        return None

    async def allowed(self, request: web.Request, access: Access) -> bool:
        return True


class BasicAuth:
    realm = "berth-registry"

    def __init__(self, users: Htpasswd) -> None:
        self.users = users

    async def require(self, request: web.Request, needed: list[Access]) -> None:
        creds = basic_credentials(request)
        if creds is None or not await self.users.verify(*creds):
            raise RegistryError(
                "UNAUTHORIZED", "authentication required", 401,
                [{"Type": a.type, "Name": a.name, "Action": a.action} for a in needed],
                headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'},
            )

    async def allowed(self, request: web.Request, access: Access) -> bool:
        creds = basic_credentials(request)
        return creds is not None and await self.users.verify(*creds)


class TokenAuth:
    def __init__(self, users: Htpasswd | None, key: bytes, service: str, anonymous_pull: bool,
                 realm: str | None = None, lifetime: int = TOKEN_LIFETIME) -> None:
        self.users, self.key, self.service = users, key, service
        self.anonymous_pull, self.realm, self.lifetime = anonymous_pull, realm, lifetime

    # ---- the token endpoint ------------------------------------------------------------------

    async def issue(self, request: web.Request) -> web.Response:
        """GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]"""
        account = ""
        creds = basic_credentials(request)
        if creds is not None:
            if self.users is None or not await self.users.verify(*creds):
                raise RegistryError("UNAUTHORIZED", "authentication required: wrong user name or password", 401)
            account = creds[0]
        elif "Authorization" in request.headers:
            raise RegistryError("UNAUTHORIZED", "authentication required: unsupported credentials", 401)
        granted = []
        for scope in request.query.getall("scope", []):
            for access in _parse_scope(scope):
                if account or (self.anonymous_pull and access.action == "pull"):
                    granted.append(access)
        now = int(time.time())
        claims = {
            "iss": self.service, "sub": account, "aud": request.query.get("service", self.service),
            "iat": now, "nbf": now - 5, "exp": now + self.lifetime, "jti": secrets.token_hex(8),
            "access": _group(granted),
        }
        token = self._sign(claims)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": self.lifetime, "issued_at": issued}
        )

    def _sign(self, claims: dict[str, object]) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"

    def _verify(self, token: str) -> dict[str, object] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        mac = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(parts[2]), mac):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict):
            return None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        now = time.time()
        if not isinstance(exp, int) or not isinstance(nbf, int) or not nbf <= now < exp:
            return None
        return claims

    # ---- checking requests -------------------------------------------------------------------

    def _granted(self, request: web.Request) -> set[tuple[str, str, str]] | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        claims = self._verify(header[7:].strip())
        if claims is None:
            return None
        out: set[tuple[str, str, str]] = set()
        access = claims.get("access")
        for entry in access if isinstance(access, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
                for action in entry["actions"]:
                    out.add((str(entry.get("type")), str(entry.get("name")), str(action)))
        return out

    def _has(self, granted: set[tuple[str, str, str]], a: Access) -> bool:
        return (a.type, a.name, a.action) in granted or (a.type, a.name, "*") in granted

    async def allowed(self, request: web.Request, access: Access) -> bool:
        granted = self._granted(request)
        return granted is not None and self._has(granted, access)

    async def require(self, request: web.Request, needed: list[Access]) -> None:
        granted = self._granted(request)
        if granted is not None and all(self._has(granted, a) for a in needed):
            return
        realm = self.realm or f"{request.scheme}://{request.host}/token"
        challenge = f'Bearer realm="{realm}",service="{self.service}"'
        scopes = _join_scopes(needed)
        if scopes:
            challenge += f',scope="{scopes}"'
        if granted is not None and needed:
            challenge += ',error="insufficient_scope"'
        raise RegistryError(
            "UNAUTHORIZED", "authentication required", 401,
            [{"Type": a.type, "Name": a.name, "Action": a.action} for a in needed],
            headers={"WWW-Authenticate": challenge},
        )


def load_key(root: Path) -> bytes:
    """The token signing key, made once per registry root (0600)."""
    path = root / "token.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def _parse_scope(scope: str) -> list[Access]:
    # repository:NAME:pull,push — NAME may hold a port-less path; actions are the last field
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return []
    return [Access(kind, name, a) for a in actions.split(",") if a]


def _group(granted: list[Access]) -> list[dict[str, object]]:
    by: dict[tuple[str, str], list[str]] = {}
    for a in granted:
        acts = by.setdefault((a.type, a.name), [])
        if a.action not in acts:
            acts.append(a.action)
    return [{"type": t, "name": n, "actions": acts} for (t, n), acts in by.items()]


def _join_scopes(needed: list[Access]) -> str:
    by: dict[tuple[str, str], list[str]] = {}
    for a in needed:
        by.setdefault((a.type, a.name), []).append(a.action)
    return " ".join(f"{t}:{n}:{','.join(acts)}" for (t, n), acts in by.items())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
