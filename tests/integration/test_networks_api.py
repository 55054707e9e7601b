"""The network, plugin and swarm routes: the pre-defined networks listed, inspected and filtered
with Docker's shapes, refused creates and removes, an empty plugin list, and dockerd's 503s for a
node outside a swarm; through the docker CLI, docker-py and raw HTTP, and compared with the
reference dockerd. (User-defined networks: test_network_user.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime
from urllib.parse import quote

import pytest

import harness

pytestmark = pytest.mark.integration

NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
    "this node to swarm and try again."
)
FIELDS = [
    "Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable",
    "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels",
]  # fmt: skip


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def filtered(d: harness.Daemon, filters: dict[str, list[str]]) -> tuple[int, object]:
    return d.api("GET", "/v1.41/networks?filters=" + quote(json.dumps(filters)))


def test_network_ls_and_inspect(berthd: harness.Berthd) -> None:
    status, nets = berthd.api("GET", "/v1.41/networks")
    assert status == 200 and isinstance(nets, list)
    assert [n["Name"] for n in nets] == ["none", "host", "bridge"]
    by_name = {n["Name"]: n for n in nets}
    for n in nets:
        assert list(n) == FIELDS
        assert re.fullmatch(r"[0-9a-f]{64}", n["Id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", n["Created"])
        assert n["Scope"] == "local" and n["Containers"] == {} and n["Labels"] == {}
        config = [{"Subnet": berthd.subnet, "Gateway": berthd.gateway}] if n["Name"] == "bridge" else []
        assert n["IPAM"] == {"Driver": "default", "Options": None, "Config": config}
        assert n["ConfigFrom"] == {"Network": ""}
    assert {name: n["Driver"] for name, n in by_name.items()} == {"none": "null", "host": "host", "bridge": "bridge"}

    # the CLI's table, sorted by name, with the 12-character ids
    r = ok(berthd.docker("network", "ls"))
    assert r.stdout.splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        f"{by_name['bridge']['Id'][:12]}   bridge    bridge    local",
        f"{by_name['host']['Id'][:12]}   host      host      local",
        f"{by_name['none']['Id'][:12]}   none      null      local",
    ]
    # inspect by name, full id and id prefix; a missing one is dockerd's 404 and `[]`
    for ref in ("bridge", by_name["bridge"]["Id"], by_name["bridge"]["Id"][:5]):
        data = json.loads(ok(berthd.docker("network", "inspect", ref)).stdout)
        assert [n["Id"] for n in data] == [by_name["bridge"]["Id"]]
        assert list(data[0]) == FIELDS
    r = berthd.docker("network", "inspect", "nope")
    assert r.returncode == 1 and r.stdout.strip() == "[]"
    assert r.stderr.strip() == "Error response from daemon: network nope not found"
    assert berthd.api("GET", "/v1.41/networks/hos") == (404, {"message": "network hos not found"})
    assert berthd.api("GET", "/v1.41/networks/host?scope=swarm") == (404, {"message": "network host not found"})
    # docker-py sees the same
    client = berthd.client()
    assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none"]
    assert client.networks.get("host").attrs["Driver"] == "host"

    # the ids are the daemon's own, kept across a restart
    berthd.restart()
    status, again = berthd.api("GET", "/v1.41/networks")
    assert status == 200 and [(n["Name"], n["Id"], n["Created"]) for n in again] == [
        (n["Name"], n["Id"], n["Created"]) for n in nets
    ]


def test_network_filters(berthd: harness.Berthd) -> None:
    _, nets = berthd.api("GET", "/v1.41/networks")
    ids = {n["Name"]: n["Id"] for n in nets}  # type: ignore[union-attr]

    def names(filters: dict[str, list[str]]) -> list[str]:
        status, body = filtered(berthd, filters)
        assert status == 200, body
        return sorted(n["Name"] for n in body)  # type: ignore[union-attr]

    assert names({"name": ["os"]}) == ["host"]  # a regular expression searched in the name
    assert names({"name": ["^no", "^br"]}) == ["bridge", "none"]
    assert names({"name": ["NONE"]}) == []
    assert names({"id": [ids["host"][:6]]}) == ["host"]
    assert names({"id": [ids["none"][3:20]]}) == ["none"]
    assert names({"driver": ["null"]}) == ["none"]
    assert names({"driver": ["nul"]}) == []
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"type": ["custom"]}) == []
    assert names({"scope": ["local"]}) == ["bridge", "host", "none"]
    assert names({"scope": ["swarm"]}) == []
    assert names({"label": ["a"]}) == []
    assert names({"dangling": ["true"]}) == []
    assert names({"dangling": ["0"]}) == ["bridge", "host", "none"]
    assert filtered(berthd, {"bogus": ["x"]}) == (400, {"message": "Invalid filter 'bogus'"})
    assert filtered(berthd, {"type": ["x"]}) == (400, {"message": "invalid filter: 'type'='x'"})
    status, body = filtered(berthd, {"dangling": ["x"]})
    assert status == 400 and "invalid value for filter 'dangling'" in body["message"]  # type: ignore[index]
    r = ok(berthd.docker("network", "ls", "--no-trunc", "--filter", "driver=host", "-q"))
    assert r.stdout.split() == [ids["host"]]


def test_network_create_and_remove_refused(berthd: harness.Berthd) -> None:
    status, body = berthd.api("POST", "/v1.41/networks/create", {"Name": "m", "Driver": "macvlan"})
    assert status == 501 and "macvlan network driver" in body["message"]
    assert berthd.api("POST", "/v1.41/networks/create", {"Name": "m", "Driver": "nope"}) == (
        404, {"message": 'plugin "nope" not found'},
    )
    assert berthd.api("POST", "/v1.41/networks/create", {"Name": "m", "Driver": "host"}) == (
        403, {"message": 'only one instance of "host" network is allowed'},
    )
    assert berthd.api("POST", "/v1.41/networks/create", {"Name": "none"}) == (
        403, {"message": "operation is not permitted on predefined none network "},
    )
    assert berthd.api("POST", "/v1.41/networks/create", {"Name": "m", "Driver": "overlay"}) == (
        503, {"message": NOT_A_MANAGER},
    )
    status, body = harness.http_request(berthd.sock, "POST", "/v1.41/networks/create", b"")
    assert status == 400 and json.loads(body) == {"message": "got EOF while reading request body"}
    for name in ("bridge", "host", "none"):
        r = berthd.docker("network", "rm", name)
        assert r.returncode == 1
        assert f"Error response from daemon: {name} is a pre-defined network and cannot be removed" in r.stderr
    assert berthd.api("DELETE", "/v1.41/networks/nope") == (404, {"message": "network nope not found"})
    assert berthd.api("POST", "/v1.41/networks/prune") == (200, {"NetworksDeleted": None})
    assert ok(berthd.docker("network", "prune", "-f")).stdout == ""


def test_network_containers_and_container_network_ids(berthd: harness.Berthd, busybox_image: str) -> None:
    cid = ok(berthd.docker("run", "-d", "--name", "onhost", "--network", "host", busybox_image, "sleep", "100")).stdout.strip()
    try:
        host = json.loads(ok(berthd.docker("network", "inspect", "host")).stdout)[0]
        assert list(host["Containers"]) == [cid]
        assert host["Containers"][cid]["Name"] == "onhost"
        assert json.loads(ok(berthd.docker("network", "inspect", "none")).stdout)[0]["Containers"] == {}
        _, listed = berthd.api("GET", "/v1.41/networks")
        assert all(n["Containers"] == {} for n in listed)  # type: ignore[union-attr]
        assert filtered(berthd, {"dangling": ["false"]})[0] == 200
        data = json.loads(ok(berthd.docker("inspect", cid)).stdout)[0]
        assert data["NetworkSettings"]["Networks"]["host"]["NetworkID"] == host["Id"]
        assert berthd.api("POST", "/v1.41/networks/bridge/connect", {"Container": cid}) == (
            400, {"message": "container cannot be disconnected from host network or connected to host network"},
        )
        assert berthd.api("POST", "/v1.41/networks/bridge/connect", {"Container": "nope"}) == (
            404, {"message": "No such container: nope"},
        )
    finally:
        berthd.docker("rm", "-f", cid)


def test_plugins_and_swarm(berthd: harness.Berthd) -> None:
    assert berthd.api("GET", "/v1.41/plugins") == (200, [])
    r = ok(berthd.docker("plugin", "ls"))
    assert r.stdout == "ID        NAME      DESCRIPTION   ENABLED\n"
    assert berthd.api("GET", "/v1.41/plugins/x/json") == (404, {"message": 'plugin "x" not found'})
    assert berthd.api("GET", '/v1.41/plugins?filters={"bogus":["x"]}')[0] == 400
    r = berthd.docker("node", "ls")
    assert r.returncode == 1 and r.stderr.strip() == f"Error response from daemon: {NOT_A_MANAGER}"
    r = berthd.docker("swarm", "leave")
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: This node is not part of a swarm"
    for method, path in [
        ("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"), ("POST", "/swarm/update?version=1"),
        ("GET", "/nodes"), ("GET", "/nodes/x"), ("DELETE", "/nodes/x"), ("GET", "/services"),
        ("POST", "/services/create"), ("GET", "/services/x/logs"), ("GET", "/tasks"), ("GET", "/tasks/x"),
        ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/configs"), ("DELETE", "/configs/x"),
    ]:  # fmt: skip
        for prefix in ("/v1.41", ""):
            assert berthd.api(method, prefix + path, {} if method == "POST" else None) == (
                503, {"message": NOT_A_MANAGER},
            ), (method, path)
    assert berthd.api("POST", "/v1.41/swarm/update", {}) == (
        400, {"message": "invalid swarm version '': strconv.ParseUint: parsing \"\": invalid syntax"},
    )
    status, body = berthd.api("POST", "/v1.41/swarm/init", {})
    assert status == 501 and "swarm" in body["message"]
    assert berthd.api("GET", "/v1.41/swarmx")[0] == 404
    status, info = berthd.api("GET", "/v1.41/info")
    assert info["Swarm"]["LocalNodeState"] == "inactive"


@pytest.mark.conformance
def test_network_cli_matches_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd) -> None:
    """The same CLI commands print the same things (ids aside) against berthd and dockerd. The
    reference runs with --bridge=none, so the comparison is on host and none."""
    got = []
    for d in (berthd, dockerd):
        rows = []
        for args in (
            ("network", "ls", "--filter", "driver=host", "--filter", "driver=null", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"),
            ("network", "inspect", "host", "none"),
            ("network", "inspect", "nope"),
            ("network", "rm", "host"),
            ("network", "create", "--driver", "host", "h2"),
            ("node", "ls"), ("service", "ls"), ("secret", "ls"), ("config", "ls"), ("swarm", "leave"),
            ("swarm", "unlock-key"), ("plugin", "ls"), ("plugin", "inspect", "x"),
        ):  # fmt: skip
            r = d.docker(*args)
            out = r.stdout
            if args[:2] == ("network", "inspect") and r.returncode == 0:
                nets = json.loads(out)
                for n in nets:
                    n["Id"], n["Created"] = "<id>", "<created>"
                out = json.dumps(nets)
            rows.append((args, r.returncode, out, r.stderr))
        got.append(rows)
    assert got[0] == got[1]


def test_info_system_time(berthd: harness.Berthd) -> None:
    status, info = berthd.api("GET", "/v1.41/info")
    assert status == 200
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", info["SystemTime"])
    text = ok(berthd.docker("info", "--format", "{{.SystemTime}}")).stdout.strip()
    # nanoseconds cut to what datetime takes; the zone is the daemon's local one
    when = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00"))
    assert abs(when.timestamp() - time.time()) < 60
    assert when.utcoffset() == datetime.now().astimezone().utcoffset()


def test_volume_create_needs_a_body(berthd: harness.Berthd) -> None:
    status, body = harness.http_request(berthd.sock, "POST", "/v1.41/volumes/create", b"")
    assert status == 400 and json.loads(body) == {"message": "got EOF while reading request body"}
    status, body = harness.http_request(berthd.sock, "POST", "/v1.41/volumes/create", b"null")
    assert status == 201 and re.fullmatch(r"[0-9a-f]{64}", json.loads(body)["Name"])
    status, volume = berthd.api("POST", "/v1.41/volumes/create", {"Name": "v1"})
    assert status == 201 and volume["Name"] == "v1"

