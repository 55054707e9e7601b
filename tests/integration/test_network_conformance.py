"""User-defined networks through the docker CLI against berthd and the reference dockerd 20.10
(in its own network namespace): the same commands print the same things, ids and times aside."""

from __future__ import annotations

import json
import re

import pytest

import harness

pytestmark = pytest.mark.conformance


def masked(text: str) -> str:
    text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<id12>", text)
    return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", text)


def test_network_commands_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    sub = "10." + str(212 + int(berthd.subnet.split(".")[2]) % 30) + ".7.0/24"
    got = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        rows = []
        for args in (
            ("network", "create", "--subnet", sub, "--label", "a=b", "tn"),
            ("network", "create", "tn"),
            ("network", "ls", "--filter", "name=tn", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}"),
            ("network", "inspect", "tn"),
            ("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Internal}} {{.EnableIPv6}}", "tn"),
            ("create", "--name", "c1", "--network", "tn", "busybox", "sleep", "30"),
            ("run", "--rm", "--network", "tn", "busybox", "cat", "/etc/resolv.conf"),
            ("run", "--rm", "--network", "tn", "--network-alias", "me", "busybox", "sh", "-c", "nslookup me >/dev/null && echo found"),
            ("run", "--rm", "--network-alias", "me", "busybox", "true"),
            ("network", "connect", "tn", "nosuch"),
            ("network", "disconnect", "nosuchnet", "c1"),
            ("network", "rm", "tn", "nosuchnet"),
            ("rm", "c1"),
            ("network", "rm", "tn"),
            ("network", "ls", "--filter", "name=tn", "-q"),
        ):  # fmt: skip
            r = d.docker(*args)
            out = r.stdout
            if args[:2] == ("network", "inspect") and r.returncode == 0 and "-f" not in args:
                out = json.dumps(json.loads(out), indent=1, sort_keys=True)
            rows.append((args, r.returncode, masked(out), masked(r.stderr)))
        got.append(rows)
    for b, ref in zip(*got, strict=True):
        assert b == ref


def test_wget_by_container_name_matches_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    """busybox wget from one container to another by name on a user network, as with dockerd.

    ``wget -T N`` exits 139 on both daemons, and on the host with no container at all: Debian's
    busybox-static 1.35 is built without CONFIG_FEATURE_WGET_TIMEOUT, and its wget segfaults when
    given ``-T`` (fixed in Debian's 1:1.36.1-5). It is not the resolver nor anything berth writes
    (/etc/resolv.conf, /etc/hosts, the embedded DNS server's answers): tests bound wget with busybox
    ``timeout`` instead. The comparison holds whichever busybox the machine has."""
    got = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        assert d.docker("network", "create", "wn").returncode == 0
        r = d.docker("run", "-d", "--name", "web", "--network", "wn", "busybox", "sh", "-c",
                     "echo hello > /index.html && exec httpd -f -p 80 -h /")
        assert r.returncode == 0, r.stderr
        ip = d.docker("inspect", "-f", "{{.NetworkSettings.Networks.wn.IPAddress}}", "web").stdout.strip()
        # the server may take a moment to listen: wait until it answers by address
        r = d.docker("run", "--rm", "--network", "wn", "busybox", "sh", "-c",
                     f"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O /dev/null http://{ip}/ && break; sleep 0.3; done; exit $?")
        assert r.returncode == 0, (d.name, r.stderr)
        rows = []
        for args in (
            ("wget", "-qO-", "http://web/"),
            ("wget", "-O-", "http://web/index.html"),
            ("wget", "-qO-", f"http://{ip}/"),
            ("wget", "-qO-", "http://web/nosuch"),
            ("wget", "-T", "3", "-qO-", "http://web/"),
            ("wget", "-T", "3", "-qO-", f"http://{ip}/"),
            ("timeout", "10", "wget", "-qO-", "http://web/"),
        ):  # fmt: skip
            r = d.docker("run", "--rm", "--network", "wn", "busybox", *args)
            rows.append((args[:-1], r.returncode, r.stdout, r.stderr.replace(ip, "<ip>")))
        d.docker("rm", "-f", "web")
        d.docker("network", "rm", "wn")
        got.append(rows)
    for b, ref in zip(*got, strict=True):
        assert b == ref
    assert got[0][0] == (("wget", "-qO-"), 0, "hello\n", "")
