"""Registries for tests: berth's own server and the CNCF registry 2.8, each on 127.0.0.1.

    with BerthRegistry(tmp_path / "reg") as reg:
        status, headers, body = reg.request("GET", "/v2/")

Both bind 127.0.0.1 only. berth's server is asked for port 0 and reports the port it got;
the CNCF registry is given a free port. Each is stopped by its pid at exit.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BERTH_REGISTRY = REPO / ".venv" / "bin" / "berth-registry"


class Registry:
    host = "127.0.0.1"
    port = 0
    tls: ssl.SSLContext | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn: http.client.HTTPConnection
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def json(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        status, _, body = self.request(method, path, **kw)
        return status, json.loads(body) if body else None

    def push_blob(self, repo: str, data: bytes, **kw: Any) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, body = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data,
            headers={"Content-Type": "application/octet-stream"}, **kw,
        )
        if status == 202:  # a registry that wants POST then PUT
            loc = headers["Location"]
            sep = "&" if "?" in loc else "?"
            status, headers, body = self.request("PUT", f"{loc}{sep}digest={digest}", body=data, **kw)
        assert status == 201, (status, body)
        return digest

    def push_manifest(self, repo: str, ref: str, manifest: dict[str, Any], **kw: Any) -> str:
        body = json.dumps(manifest).encode()
        status, headers, data = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", body=body,
            headers={"Content-Type": manifest["mediaType"]}, **kw,
        )
        assert status == 201, (status, data)
        return headers["Docker-Content-Digest"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BerthRegistry(Registry):
    """``berth-registry serve`` on a private root."""

    def __init__(self, root: Path, *args: str, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.tls = tls
        self.log = root.parent / f"{root.name}.log"
        self.start(*args)

    def start(self, *args: str) -> None:
        self.args = args
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(BERTH_REGISTRY), "serve", "--addr", "127.0.0.1:0", "--root", str(self.root), *args],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
        )
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = re.search(r"serving .* on https?://127\.0\.0\.1:(\d+)", self.log.read_text())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"berth-registry did not start:\n{self.log.read_text()}")

    def restart(self) -> None:
        self.stop()
        self.log.write_text("")
        self.start(*self.args)


class CNCFRegistry(Registry):
    """Debian's docker-registry (the CNCF distribution registry 2.8) on a private root."""

    def __init__(self, root: Path, port: int) -> None:
        exe = shutil.which("docker-registry")
        if exe is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        root.mkdir(parents=True, exist_ok=True)
        self.port = port
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + str(root / "data")
            + "\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + str(port) + "\n"
        )
        self.log = root / "log"
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([exe, "serve", str(config)], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/v2/", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{self.log.read_text()}")

