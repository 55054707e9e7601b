"""Registry credentials as the docker CLI keeps them: ``$DOCKER_CONFIG/config.json``.

The same file and rules as docker's, so ``docker login`` and ``berth login`` share credentials:

- the key of a registry is its host (``127.0.0.1:5000``); Docker Hub's is
  ``https://index.docker.io/v1/``;
- ``credHelpers[host]`` names a helper for one registry, ``credsStore`` one for all; a helper is the
  program ``docker-credential-NAME`` (``get`` reads the server URL on stdin and answers
  ``{"Username", "Secret"}``; ``store`` reads ``{"ServerURL", "Username", "Secret"}``; ``erase``);
- otherwise ``auths[host].auth`` holds base64 ``user:password``. The file is written 0600.

``header(creds)`` is the ``X-Registry-Auth`` value the daemon gets (base64url JSON)::

    creds = lookup(config_dir(env), "127.0.0.1:5000")        # {"username", "password", "serveraddress"}
    headers = {"X-Registry-Auth": header(creds)}
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from berth.errors import InvalidParameter, SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HUB_KEY = "https://index.docker.io/v1/"
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io", HUB_KEY, "https://index.docker.io/v1")


def config_dir(env: dict[str, str]) -> Path:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".docker"


def server_key(server: str) -> str:
    """The config.json key of a registry named as the user named it."""
    if not server or server in HUB_NAMES:
        return HUB_KEY
    return server.removeprefix("https://").removeprefix("http://").rstrip("/")


def registry_of(image: str) -> str:
    """The registry host of an image reference (``docker.io`` when it names none)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _load(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidParameter(f"read {folder / 'config.json'}: {exc}") from None
    return doc if isinstance(doc, dict) else {}


def _save(folder: Path, doc: dict[str, Any]) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / "config.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
    os.replace(tmp, folder / "config.json")


def _helper(doc: dict[str, Any], key: str) -> str:
    helpers = doc.get("credHelpers") or {}
    name = helpers.get(key) if isinstance(helpers, dict) else None
    if not name:
        name = doc.get("credsStore")
    return name if isinstance(name, str) else ""


def _run_helper(name: str, verb: str, data: str) -> str:
    exe = f"docker-credential-{name}"
    try:
        proc = subprocess.run([exe, verb], input=data, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SystemFailure(f"error getting credentials - err: exec: \"{exe}\": executable file not found in $PATH") from None
    if proc.returncode != 0:
        out = (proc.stdout or proc.stderr).strip()
        if verb == "get" and "credentials not found" in out.lower():
            return ""
        raise SystemFailure(f"error {verb}ting credentials - err: {exe} {verb}: {out or proc.returncode}")
    return proc.stdout


def lookup(folder: Path, server: str) -> dict[str, str]:
    key = server_key(server)
    doc = _load(folder)
    helper = _helper(doc, key)
    if helper:
        answer = _run_helper(helper, "get", key)
        if answer:
            got = json.loads(answer)
            return {"username": got.get("Username", ""), "password": got.get("Secret", ""), "serveraddress": key}
        return {}
    entry = (doc.get("auths") or {}).get(key) or {}
    if not isinstance(entry, dict):
        return {}
    out: dict[str, str] = {"serveraddress": key}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        out.update(username=user, password=password)
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out if len(out) > 1 else {}


def store(folder: Path, server: str, username: str, password: str) -> Path | None:
    """Save the credentials; returns the file they went to in clear text (None with a helper)."""
    key = server_key(server)
    doc = _load(folder)
    helper = _helper(doc, key)
    if helper:
        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": username, "Secret": password}))
        doc.setdefault("auths", {})[key] = {}
        _save(folder, doc)
        return None
    doc.setdefault("auths", {})[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _save(folder, doc)
    return folder / "config.json"


def erase(folder: Path, server: str) -> bool:
    key = server_key(server)
    doc = _load(folder)
    helper = _helper(doc, key)
    if helper:
        _run_helper(helper, "erase", key)
    auths = doc.get("auths") or {}
    had = key in auths
    auths.pop(key, None)
    if had:
        _save(folder, doc)
    return had or bool(helper)


def header(creds: dict[str, str]) -> str:
    """``X-Registry-Auth``: base64url JSON, ``e30=`` (``{}``) without credentials, as the docker CLI."""
    return base64.urlsafe_b64encode(json.dumps(creds, separators=(",", ":")).encode()).decode()


def auth_header_for(env: dict[str, str], image: str) -> str:
    return header(lookup(config_dir(env), registry_of(image)))
