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
