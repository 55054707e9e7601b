"""Image config documents, ids and times (berth.graph.image)."""

from __future__ import annotations

import hashlib
import json

from berth.graph.image import (
    chain_id,
    chain_ids,
    container_config,
    encode,
    image_id,
    new_config,
    parse_rfc3339,
    rfc3339_nano,
)

DIFF = "sha256:" + "a" * 64


def test_container_config_has_dockers_zero_fields_in_go_order() -> None:
    config = container_config({"Cmd": ["sh"]})
    assert list(config) == [
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "OnBuild",
        "Labels",
    ]
    assert config["Env"] is None and config["Cmd"] == ["sh"]
    with_ports = container_config({"ExposedPorts": {"80/tcp": {}}})
    assert list(with_ports).index("ExposedPorts") == list(with_ports).index("AttachStderr") + 1


def test_import_config_shape_and_id_is_sha256_of_the_bytes() -> None:
    doc = new_config(
        diff_ids=[DIFF], config={}, created_ns=1_795_840_190_514_306_475, comment="Imported from -"
    )
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [DIFF]}
    assert doc["history"] == [{"created": "2026-11-28T04:29:50.514306475Z", "comment": "Imported from -"}]
    assert doc["os"] == "linux" and doc["architecture"]
    assert doc["config"]["Env"] is None  # docker import sets no Env
    data = encode(doc)
    assert image_id(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert json.loads(data) == doc


def test_history_extends_the_parents() -> None:
    parent = new_config(diff_ids=[DIFF], config={}, created_ns=10**9, comment="base")
    child = new_config(
        diff_ids=[DIFF],
        config={},
        created_ns=2 * 10**9,
        created_by="/bin/sh -c #(nop) CMD",
        parent_config=parent,
        empty_layer=True,
    )
    assert [h.get("comment") or h.get("created_by") for h in child["history"]] == [
        "base",
        "/bin/sh -c #(nop) CMD",
    ]
    assert child["history"][1]["empty_layer"] is True


def test_chain_ids_follow_the_oci_definition() -> None:
    second = "sha256:" + "b" * 64
    assert chain_id(None, DIFF) == DIFF
    expected = "sha256:" + hashlib.sha256(f"{DIFF} {second}".encode()).hexdigest()
    assert chain_ids([DIFF, second]) == [DIFF, expected]


def test_rfc3339_nano_round_trip_and_go_trimming() -> None:
    assert rfc3339_nano(1_795_840_190_000_000_000) == "2026-11-28T04:29:50Z"
    assert rfc3339_nano(1_795_840_190_500_000_000) == "2026-11-28T04:29:50.5Z"
    assert parse_rfc3339("2026-11-28T04:29:50.514306475Z") == 1_795_840_190_514_306_475
    assert parse_rfc3339("2026-11-28T05:29:50.5+01:00") == 1_795_840_190_500_000_000
    assert parse_rfc3339("0001-01-01T00:00:00Z") < 0


def test_encoding_escapes_like_go_and_commits_keep_the_comment_in_history() -> None:
    doc = new_config(
        diff_ids=[DIFF], config={"Cmd": ["sh", "-c", "a > b && c < d"]}, created_ns=1, comment="m"
    )
    data = encode(doc)
    assert b"a \\u003e b \\u0026\\u0026 c \\u003c d" in data and json.loads(data) == doc
    assert list(json.loads(data)) == sorted(doc)
    child = new_config(diff_ids=[DIFF], config={}, created_ns=2, comment="msg", parent_config=doc)
    assert "comment" not in child and child["history"][-1]["comment"] == "msg"
