"""What docker-py's own integration suite (tools/dockerpy_suite.py, docs/testing.md) found berth
doing differently from dockerd, each checked here against the reference where it can be."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from registry_harness import BERTH_REGISTRY, BerthRegistry

pytestmark = pytest.mark.integration


def ok(r: Any) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def _registry_in_netns(netns: str, root: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "--", str(BERTH_REGISTRY), "serve",
                                 "--addr", "127.0.0.1:0", "--root", str(root)], stdout=out, stderr=out)
    for _ in range(200):
        text = log.read_text()
        if "serving" in text:
            return proc, text.rsplit(":", 1)[1].strip()
        time.sleep(0.05)
    proc.terminate()
    proc.wait(10)
    raise AssertionError(log.read_text())


def _distribution(d: harness.Daemon, addr: str) -> dict[str, Any]:
    """Push busybox to addr as ref/bbx:1 and ask GET /distribution about it, by tag, by digest
    and for a tag the registry lacks; docker-py's inspect_distribution for the first."""
    ok(d.docker("tag", "busybox:latest", f"{addr}/ref/bbx:1"))
    ok(d.docker("push", f"{addr}/ref/bbx:1"))
    by_tag = d.client().api.inspect_distribution(f"{addr}/ref/bbx:1")
    status, by_digest = d.api("GET", f"/v1.41/distribution/{addr}/ref/bbx@{by_tag['Descriptor']['digest']}/json")
    assert status == 200, by_digest
    missing, body = d.api("GET", f"/v1.41/distribution/{addr}/ref/bbx:nope/json")
    return {"by_tag": by_tag, "by_digest": by_digest, "missing": missing, "missing_body": body}


@pytest.mark.conformance
def test_distribution_inspect_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path,
                                         tmp_path: Path) -> None:
    """docker-py's InspectDistributionTest: GET /distribution/NAME/json was a 404 route in berth."""
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    with BerthRegistry(tmp_path / "reg-berth") as reg:
        got["berth"] = _distribution(berthd, reg.addr)
    proc, port = _registry_in_netns(dockerd.netns, tmp_path / "reg-docker", tmp_path / "reg.log")
    try:
        got["docker"] = _distribution(dockerd, f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)
    for name, r in got.items():
        desc = r["by_tag"]["Descriptor"]
        assert set(r["by_tag"]) == {"Descriptor", "Platforms"}, (name, r)
        assert set(desc) == {"mediaType", "digest", "size"}, (name, r)
        assert desc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json", (name, r)
        assert desc["digest"].startswith("sha256:") and desc["size"] > 0, (name, r)
        assert r["by_tag"]["Platforms"] == [{"architecture": "amd64", "os": "linux"}], (name, r)
        assert r["by_digest"] == r["by_tag"], (name, r)
    # the same answers; a missing tag is the same status on both
    assert got["berth"]["missing"] == got["docker"]["missing"], got
    assert got["berth"]["missing"] >= 400, got


def _networks(d: harness.Daemon, subnets: list[str]) -> dict[str, Any]:
    c = d.client().api
    out: dict[str, Any] = {}
    for name in ("test 01", "x!", "-x"):
        status, body = d.api("POST", "/v1.41/networks/create", {"Name": name, "Internal": True})
        out[f"name {name!r}"] = status
        if status == 201:
            out[f"inspect {name!r}"] = c.inspect_network(name)["Name"]
            c.remove_network(name)
    out["empty name"] = d.api("POST", "/v1.41/networks/create", {"Name": ""})[0]
    # IPAM.Options: null unless the request gave some ({} from the CLI stays {})
    from docker.types import IPAMConfig, IPAMPool

    nid = c.create_network("ipam-none", internal=True)["Id"]
    out["no IPAM"] = c.inspect_network(nid)["IPAM"]["Options"]
    aux = {"a": subnets[0].replace(".0/24", ".5"), "b": subnets[0].replace(".0/24", ".6")}
    nid = c.create_network("ipam-given", internal=True,
                           ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnets[0], aux_addresses=aux)]))["Id"]
    out["IPAM without Options"] = c.inspect_network(nid)["IPAM"]["Options"]
    out["IPAM Config"] = c.inspect_network(nid)["IPAM"]["Config"]  # AuxiliaryAddresses a map, not its text
    nid = c.create_network("ipam-opts", internal=True,
                           ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnets[1])], options={"k": "v"}))["Id"]
    out["IPAM with Options"] = c.inspect_network(nid)["IPAM"]["Options"]
    ok(d.docker("network", "create", "--internal", "--subnet", subnets[2], "cli-net"))
    out["CLI"] = c.inspect_network("cli-net")["IPAM"]["Options"]
    for n in ("ipam-none", "ipam-given", "ipam-opts", "cli-net"):
        c.remove_network(n)
    return out


@pytest.mark.conformance
def test_network_names_and_ipam_options_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd) -> None:
    """docker-py's test_create_remove_network_with_space_in_name (berth refused "test 01") and
    test_create_network_with_ipam_config (berth showed IPAM.Options {} where dockerd shows null)."""
    base = berthd.subnet.rsplit(".", 2)[0]  # 10.2xx: berthd's own range, so no clash with the host
    subnets = [f"{base}.{250 + i}.0/24" for i in range(3)]
    got = {d.name: _networks(d, subnets) for d in (berthd, dockerd)}
    # an empty name: dockerd 20.10 answers 500 ("invalid name: "), berth 400 (the client's error)
    assert (got["berth"].pop("empty name"), got["docker"].pop("empty name")) == (400, 500), got
    assert got["berth"] == got["docker"], got
    assert got["docker"]["name 'test 01'"] == 201 and got["docker"]["no IPAM"] is None, got
    assert got["docker"]["CLI"] == {}, got
    assert isinstance(got["docker"]["IPAM Config"][0]["AuxiliaryAddresses"], dict), got


@pytest.mark.conformance
def test_info_counts_intermediate_images_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                    busybox_tar: Path, tmp_path: Path) -> None:
    """docker-py's ListImagesTest.test_images: info's Images is the number of distinct ids
    `images(all=True)` lists (intermediate images of a build included); berth counted top ones."""
    (tmp_path / "Dockerfile").write_text("FROM busybox\nLABEL a=1\nENV B=2\nLABEL c=3\n")
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        env = {**d.env, "DOCKER_BUILDKIT": "0"}
        r = subprocess.run(["docker", "build", "--network", "none", "-q", "-t", "built", str(tmp_path)],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        c = d.client().api
        ids = {i["Id"] for i in c.images(all=True)}
        got[d.name] = (c.info()["Images"], len(ids), len(c.images()))
    assert got["berth"] == got["docker"], got
    assert got["docker"][0] == got["docker"][1] > got["docker"][2], got


@pytest.mark.conformance
def test_stats_networks_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    """docker-py's test_get_container_stats_no_stream and ContainerTest.test_stats: stats carry
    `networks` (per interface, lo left out) for a container with interfaces of its own; berth had
    none. With --network none there is no such key, on both."""
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        c = d.client().api
        c.create_network("statsnet", internal=True)
        shapes = {}
        for net in ("statsnet", "none"):
            ctr = c.create_container("busybox", "sleep 60", host_config=c.create_host_config(network_mode=net))
            c.start(ctr)
            stats = c.stats(ctr, stream=False)
            networks = stats.get("networks")
            shapes[net] = None if networks is None else {k: sorted(v) for k, v in networks.items()}
            if networks:
                assert all(isinstance(x, int) for v in networks.values() for x in v.values()), networks
            c.remove_container(ctr, force=True)
        c.remove_network("statsnet")
        got[d.name] = shapes
    assert got["berth"] == got["docker"], got
    assert got["docker"]["statsnet"] == {"eth0": sorted(
        ["rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"])}
    assert got["docker"]["none"] is None


@pytest.mark.conformance
def test_connect_with_mac_address_shown_before_start_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                                busybox_tar: Path) -> None:
    """docker-py's test_connect_with_mac_address: a created container connected with a MAC
    address shows it in its endpoint settings (berth showed "" until the container ran)."""
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        c = d.client().api
        c.create_network("macnet", internal=True)
        c.create_network("firstnet", internal=True)
        ctr = c.create_container("busybox", "top", host_config=c.create_host_config(network_mode="firstnet"))
        c.connect_container_to_network(ctr, "macnet", mac_address="02:42:ac:11:00:02")
        got[d.name] = c.inspect_container(ctr)["NetworkSettings"]["Networks"]["macnet"]["MacAddress"]
        c.remove_container(ctr, force=True)
        c.remove_network("macnet")
        c.remove_network("firstnet")
    assert got == {"berth": "02:42:ac:11:00:02", "docker": "02:42:ac:11:00:02"}, got


@pytest.mark.conformance
def test_forced_rmi_of_a_name_while_a_container_runs_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                                busybox_tar: Path) -> None:
    """docker-py's test_save_and_load_repo_name: `rmi -f NAME` of an image a running container
    uses untags NAME (berth refused with "cannot be forced"); only a delete of the image itself
    (by id) is refused. The last name goes too, the image stays."""
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        c = d.client().api
        ctr = c.create_container("busybox", "sleep 60", host_config=c.create_host_config(network_mode="none"))
        c.start(ctr)
        image_id = c.inspect_image("busybox")["Id"]
        c.tag("busybox", "extra")
        out: dict[str, Any] = {"extra": c.remove_image("extra", force=True)}
        status, body = d.api("DELETE", f"/v1.41/images/{image_id}?force=1")
        out["by id"] = (status, body["message"].replace(image_id[7:19], "ID").rsplit(" ", 1)[0])
        out["last name"] = c.remove_image("busybox", force=True)
        out["left"] = c.inspect_image(image_id)["RepoTags"]
        c.remove_container(ctr, force=True)
        got[d.name] = out
    assert got["berth"] == got["docker"], got
    assert got["docker"]["extra"] == [{"Untagged": "extra:latest"}], got
    assert got["docker"]["by id"][0] == 409, got


@pytest.mark.conformance
def test_build_cache_from_limits_hits_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                 busybox_tar: Path) -> None:
    """docker-py's test_build_with_cache_from: with cachefrom, the classic builder takes a cached
    step only from those images (or their ancestors); a name it cannot find gives no hits (berth
    ignored cachefrom and hit its whole cache)."""
    import io

    script = b"FROM busybox\nENV FOO=bar\nRUN touch baz\nRUN touch bax\n"

    def hits(c: Any, tag: str, cache_from: list[str] | None) -> int:
        stream = c.build(fileobj=io.BytesIO(script), tag=tag, cache_from=cache_from, network_mode="none",
                         decode=True)
        return sum("Using cache" in chunk.get("stream", "") for chunk in stream)

    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        c = d.client().api
        first = hits(c, "build1", None)
        with_source = hits(c, "build2", ["build1"])
        c.remove_image("build2")
        unknown = hits(c, "build3", ["nosuchtag"])
        other = hits(c, "build4", ["busybox"])  # an ancestor of the steps' parent only: no step image
        got[d.name] = (first, with_source, unknown, other)
    assert got["berth"] == got["docker"] == (0, 3, 0, 0), got


@pytest.mark.conformance
def test_exec_detach_keys_in_lower_camel_case_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                         busybox_tar: Path) -> None:
    """docker-py's test_detach_with_config_file: docker-py sends the config file's detach keys as
    `detachKeys` in the exec create body; Go's JSON decoding matches it to DetachKeys (berth
    ignored it, so ctrl-p went to the process)."""
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        c = d.client().api
        c._general_configs["detachKeys"] = "ctrl-p"  # what ~/.docker/config.json's detachKeys gives
        ctr = c.create_container("busybox", "cat", stdin_open=True, host_config=c.create_host_config(network_mode="none"))
        c.start(ctr)
        ex = c.exec_create(ctr, "cat", stdin=True, tty=True, stdout=True)
        got[d.name] = {}
        wrapper = c.exec_start(ex, tty=True, socket=True)
        sock = wrapper._sock
        sock.settimeout(10)
        sock.sendall(b"\x10")
        time.sleep(0.5)
        try:
            sock.sendall(b"after\n")
            data = sock.recv(128)
        except OSError:
            data = b""
        wrapper.close()
        sock.close()
        # detached: nothing of "after" comes back (dockerd says why, berth closes)
        got[d.name]["echoed"] = b"after" in data
        c.remove_container(ctr, force=True)
    assert got["berth"]["echoed"] is got["docker"]["echoed"] is False, got


@pytest.mark.conformance
def test_endpoint_links_resolve_by_name_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                   busybox_tar: Path) -> None:
    """docker-py's test_create_with_links and test_connect_with_links: Links in a user network's
    endpoint settings (at create or at connect) make the alias resolve, in that container only, to
    the target's address, the target started later; berth resolved only HostConfig.Links."""
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        c = d.client().api
        c.create_network("linknet", internal=True)
        hc = c.create_host_config(network_mode="linknet")
        made = c.create_container("busybox", "top", host_config=hc, networking_config=c.create_networking_config(
            {"linknet": c.create_endpoint_config(links=[("upstream", "bar")])}))
        c.start(made)
        connected = c.create_container("busybox", "top", host_config=hc)
        c.start(connected)
        c.disconnect_container_from_network(connected, "linknet")
        c.connect_container_to_network(connected, "linknet", links=[("upstream", "baz")])
        target = c.create_container("busybox", "top", name="upstream", host_config=hc)
        c.start(target)
        ip = c.inspect_container(target)["NetworkSettings"]["Networks"]["linknet"]["IPAddress"]
        out = {}
        for ctr, alias in ((made, "bar"), (connected, "baz"), (target, "bar")):
            ex = c.exec_create(ctr, ["nslookup", alias])
            text = c.exec_start(ex).decode()
            out[alias + ("" if ctr is not target else " from the target")] = (
                c.exec_inspect(ex)["ExitCode"], ip in text)
        out["Links"] = [c.inspect_container(x)["NetworkSettings"]["Networks"]["linknet"]["Links"]
                        for x in (made, connected)]
        for x in (made, connected, target):
            c.remove_container(x, force=True)
        c.remove_network("linknet")
        got[d.name] = out
    assert got["berth"] == got["docker"], got
    assert got["docker"]["bar"] == (0, True) and got["docker"]["baz"] == (0, True), got
    assert got["docker"]["bar from the target"][0] != 0, got
