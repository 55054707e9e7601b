"""Image configs and load manifests from outside (berth.graph.configcheck): every field berth
reads has the right JSON type, or an InvalidParameter names it."""

from __future__ import annotations

from typing import Any

import pytest

from berth.errors import InvalidParameter
from berth.graph.configcheck import check_config, parse_json
from berth.graph.image import INT64_MIN, container_config, sortable_ns

DIFF = "sha256:" + "a" * 64


def config(**extra: Any) -> dict[str, Any]:
    return {"rootfs": {"type": "layers", "diff_ids": [DIFF]}, **extra}


def test_a_minimal_oci_config_passes_without_created() -> None:
    assert check_config(config(), "c") == [DIFF]
    assert check_config(config(created="0001-01-01T00:00:00Z", config={"Cmd": "sh"}), "c") == [DIFF]


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        pytest.param([], "must be a JSON object, not a list", id="list"),
        pytest.param({}, "rootfs must be an object", id="no-rootfs"),
        pytest.param({"rootfs": {"type": "x", "diff_ids": []}}, 'rootfs.type must be "layers"', id="rootfs-type"),
        pytest.param({"rootfs": {"type": "layers", "diff_ids": "abc"}}, "diff_ids must be a list", id="diff-ids-str"),
        pytest.param({"rootfs": {"type": "layers", "diff_ids": ["sha256:xyz"]}}, "diff_ids must be", id="bad-digest"),
        pytest.param(config(created=123), "created must be an RFC 3339 time string, not a number", id="created-int"),
        pytest.param(config(created="yesterday"), "not an RFC 3339 time", id="created-text"),
        pytest.param(config(created="0001-01-01T00:00:00+01:00"), "years 1 to 9999", id="created-before-year-1"),
        pytest.param(config(config=5), "config must be an object, not a number", id="config-int"),
        pytest.param(config(config={"Env": "A=b"}), "config.Env must be a list of strings", id="env-str"),
        pytest.param(config(config={"Labels": {"a": 1}}), "config.Labels must be an object of strings", id="labels"),
        pytest.param(config(config={"Cmd": [1]}), "config.Cmd must be a string or a list of strings", id="cmd"),
        pytest.param(config(history=[5]), "history must be a list of objects", id="history"),
        pytest.param(config(history=[{"created_by": 5}]), r"history\[0\].created_by must be a string", id="history-field"),
        pytest.param(config(architecture=["amd64"]), "architecture must be a string", id="arch"),
    ],
)
def test_bad_configs_name_the_field(doc: Any, why: str) -> None:
    with pytest.raises(InvalidParameter, match=why):
        check_config(doc, "load: abc.json")


def test_parse_json_bounds_size_and_depth() -> None:
    with pytest.raises(InvalidParameter, match="the limit is 10"):
        parse_json(b"[1, 2, 3, 4, 5]", "m", limit=10)
    with pytest.raises(InvalidParameter, match="nested more than"):
        parse_json(b"[" * 100_000, "m")


def test_created_times_fit_the_images_table() -> None:
    assert sortable_ns(None) == sortable_ns("") == 0
    assert sortable_ns("0001-01-01T00:00:00Z") == INT64_MIN  # -6.2e19 ns does not fit 64 bits
    assert sortable_ns("1970-01-01T00:00:01Z") == 1_000_000_000


def test_docker_strslice_reads_as_a_list() -> None:
    assert container_config({"Cmd": "sh", "Entrypoint": ["a"]})["Cmd"] == ["sh"]
