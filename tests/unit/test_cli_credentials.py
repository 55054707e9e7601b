"""The docker CLI's credential store, as berth reads and writes it (config.json and helpers)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from berth.cli import credentials as C


def test_store_lookup_erase_in_config_json(tmp_path: Path) -> None:
    assert C.lookup(tmp_path, "127.0.0.1:5000") == {}
    saved = C.store(tmp_path, "127.0.0.1:5000", "ann", "p:w")
    assert saved == tmp_path / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    doc = json.loads(saved.read_text())
    assert base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]) == b"ann:p:w"
    assert C.lookup(tmp_path, "127.0.0.1:5000") == {"serveraddress": "127.0.0.1:5000", "username": "ann", "password": "p:w"}
    assert C.erase(tmp_path, "127.0.0.1:5000") and C.lookup(tmp_path, "127.0.0.1:5000") == {}


def test_keys_and_registries() -> None:
    assert C.server_key("") == C.server_key("docker.io") == "https://index.docker.io/v1/"
    assert C.server_key("https://reg.example:5000/") == "reg.example:5000"
    assert C.registry_of("busybox") == "docker.io" and C.registry_of("team/app:1") == "docker.io"
    assert C.registry_of("127.0.0.1:5000/x") == "127.0.0.1:5000" and C.registry_of("localhost/x") == "localhost"
    hdr = C.header({"username": "u", "password": "p"})
    assert json.loads(base64.urlsafe_b64decode(hdr)) == {"username": "u", "password": "p"}
    assert C.header({}) == "e30="


def test_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-fake"
    helper.write_text(f"""#!/usr/bin/env python3
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {{}}
verb, data = sys.argv[1], sys.stdin.read()
if verb == "store":
    d = json.loads(data); db[d["ServerURL"]] = d; json.dump(db, open(path, "w"))
elif verb == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    d = db[data.strip()]; print(json.dumps({{"Username": d["Username"], "Secret": d["Secret"]}}))
elif verb == "erase":
    db.pop(data.strip(), None); json.dump(db, open(path, "w"))
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    assert C.lookup(cfg, "reg.example") == {}
    assert C.store(cfg, "reg.example", "bob", "s3") is None  # nothing in clear text
    assert "s3" not in (cfg / "config.json").read_text()
    assert C.lookup(cfg, "reg.example") == {"username": "bob", "password": "s3", "serveraddress": "reg.example"}
    C.erase(cfg, "reg.example")
    assert C.lookup(cfg, "reg.example") == {}
    (cfg / "config.json").write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(Exception, match="docker-credential-missing-helper"):
        C.lookup(cfg, "other.example")


def test_terminal_progress_rewrites_each_id_in_place() -> None:
    from berth.cli.progress import Terminal

    out: list[str] = []
    term = Terminal(out.append)
    term.show({"status": "Pulling from team/bbx", "id": "v1"})
    term.show({"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"})
    term.show({"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"})
    term.show({"status": "Downloading", "progressDetail": {"current": 10, "total": 100},
               "progress": "[=====>      ]  10B/100B", "id": "aaa"})
    term.show({"status": "Digest: sha256:x"})
    assert out[:3] == ["v1: Pulling from team/bbx\n", "aaa: Pulling fs layer\n", "bbb: Pulling fs layer\n"]
    # aaa is two lines above the cursor: up 2, clear, write, down 2
    assert out[3] == "\x1b[2A\r\x1b[2Kaaa: Downloading [=====>      ]  10B/100B\r\x1b[2B"
    assert out[4] == "Digest: sha256:x\n"
