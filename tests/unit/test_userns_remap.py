"""--userns-remap's pure parts: subordinate id files, free ranges, per-container maps (berth.daemon.remap)."""

from __future__ import annotations

import pytest

from berth.daemon import remap, subids
from berth.errors import InvalidParameter

pytestmark = pytest.mark.unit


def test_parse_skips_what_shadow_skips() -> None:
    text = "# comment\nalice:100000:65536\nbad line\nbob:x:1\n1001:300000:10\n\n"
    assert subids.parse(text) == [("alice", 100000, 65536), ("1001", 300000, 10)]


def test_free_start_skips_every_range_of_both_files() -> None:
    uids = "a:100000:65536\nb:300000:65536\n"
    gids = "a:165536:1000\n"
    assert subids.free_start([uids, gids], 65536) == 166536
    assert subids.free_start([uids, gids], 200000) == 365536
    assert subids.free_start(["", ""], 10) == subids.FIRST_ID


def _remap() -> remap.Remap:
    return remap.Remap("berthremap", "berthremap", ((100000, 65536), (165536, 3 * 65536)),
                       ((100000, 65536), (165536, 3 * 65536)))


def test_modes() -> None:
    r = _remap()
    assert r.maps_for({}, {}, []) == {"uid": [[0, 100000, 65536]], "gid": [[0, 100000, 65536]]}
    assert r.maps_for({"UsernsMode": "host"}, {}, []) is None
    first = r.maps_for({"UsernsMode": "auto"}, {}, [])
    assert first == {"uid": [[0, 165536, 65536]], "gid": [[0, 165536, 65536]]}
    second = r.maps_for({}, {remap.LABEL: "auto"}, [first])
    assert second is not None and second["uid"][0][1] == 165536 + 65536
    assert r.maps_for({"UsernsMode": "map=0:200000:1000,1000:300000:10"}, {}, []) == {
        "uid": [[0, 200000, 1000], [1000, 300000, 10]], "gid": [[0, 200000, 1000], [1000, 300000, 10]]}


def test_auto_runs_out() -> None:
    r = _remap()
    taken = []
    for _ in range(3):
        got = r.maps_for({"UsernsMode": "auto"}, {}, taken)
        assert got is not None
        taken.append(got)
    with pytest.raises(InvalidParameter, match="in use"):
        r.maps_for({"UsernsMode": "auto"}, {}, taken)


@pytest.mark.parametrize(("mode", "text"), [
    ("map=0:0:1", "not subordinate ids"),
    ("map=1:200000:5", "id 0 is not mapped"),
    ("map=0:200000:10,5:300000:10", "overlap"),
    ("map=0:200000", "not CONTAINER:HOST:COUNT"),
    ("map=0:200000:0", "not CONTAINER:HOST:COUNT"),
    ("mapp", "invalid USER mode"),
])
def test_bad_maps(mode: str, text: str) -> None:
    with pytest.raises(InvalidParameter, match=text):
        _remap().maps_for({"UsernsMode": mode}, {}, [])


def test_conflicts_and_refusals() -> None:
    with pytest.raises(InvalidParameter, match="conflicting options"):
        remap.mode_of({"UsernsMode": "host"}, {remap.LABEL: "auto"})
    with pytest.raises(InvalidParameter, match="without --userns-remap"):
        remap.check_create(None, {"UsernsMode": "auto"}, {})
    remap.check_create(None, {"Privileged": True}, {})  # no remap: no user namespace, no refusal
    with pytest.raises(InvalidParameter, match="privileged mode is incompatible"):
        remap.check_create(_remap(), {"Privileged": True}, {})
    remap.check_create(_remap(), {"Privileged": True, "UsernsMode": "host"}, {})


def test_ids_back_to_the_container() -> None:
    back = remap.to_container({"uid": [[0, 100000, 65536]], "gid": [[0, 200000, 65536]]})
    assert back is not None
    assert back(100000, 200000) == (0, 0)
    assert back(101000, 201000) == (1000, 1000)
    assert back(0, 5) == (0, 5)  # outside the maps: kept
    assert remap.to_container(None) is None


def test_auto_skips_a_block_an_explicit_map_overlaps() -> None:
    r = _remap()
    explicit = r.maps_for({"UsernsMode": "map=0:170000:10"}, {}, [])
    assert explicit is not None
    got = r.maps_for({"UsernsMode": "auto"}, {}, [explicit])
    assert got is not None and got["uid"][0][1] == 165536 + 65536



def test_flag_and_daemon_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from berth.daemon.config import parse_args

    assert parse_args([]).userns_remap == ""
    assert parse_args(["--userns-remap", "default"]).userns_remap == "default"
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"userns-remap": "alice:staff"}))
    assert parse_args(["--config-file", str(conf)]).userns_remap == "alice:staff"
