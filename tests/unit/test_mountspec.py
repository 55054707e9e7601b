"""-v / --mount / VOLUME parsing and the mount plan (berth.daemon.mountspec, pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.daemon.mountspec import MountPoint, inspect_view, oci_mounts, parse_bind, parse_mount, plan
from berth.errors import InvalidParameter


def test_parse_bind_host_path() -> None:
    m = parse_bind("/srv/data/:/data")
    assert m == MountPoint("bind", "/srv/data", "/data", rw=True, mode="", propagation="rprivate",
                           copy_data=False, create_source=True)
    ro = parse_bind("/srv:/srv:ro")
    assert ro.rw is False and ro.mode == "ro"
    assert parse_bind("/a:/b:ro,rshared").propagation == "rshared"


def test_parse_bind_named_volume() -> None:
    m = parse_bind("cache:/var/cache")
    assert (m.type, m.source, m.destination, m.rw, m.mode, m.copy_data) == ("volume", "cache", "/var/cache", True, "z", True)
    assert parse_bind("cache:/c:nocopy").copy_data is False
    assert parse_bind("cache:/c:ro").mode == "ro"


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("/a", "invalid volume specification: '/a'"),
        ("/a:/b:/c:/d", "invalid volume specification"),
        ("/a:rel", "mount path must be absolute"),
        ("/a:/", "destination can't be '/'"),
        ("/a:/b:rx", "invalid mode: rx"),
        ("/a:/b:ro,rw", "invalid mode"),
        ("bad/name:/b", "includes invalid characters for a local volume name"),
        ("x:/b", "includes invalid characters"),
        ("vol:/b:rshared", "propagation applies to binds only"),
    ],
)
def test_parse_bind_errors(spec: str, text: str) -> None:
    with pytest.raises(InvalidParameter, match=".*" + text.replace("(", r"\(").replace("[", r"\[")):
        parse_bind(spec)


def test_parse_mount() -> None:
    m = parse_mount({"Type": "bind", "Source": "/h", "Target": "/c/", "ReadOnly": True})
    assert m == MountPoint("bind", "/h", "/c", rw=False, mode="", propagation="rprivate", copy_data=False)
    v = parse_mount({"Type": "volume", "Source": "myvol", "Target": "/d"})
    assert (v.type, v.source, v.rw, v.copy_data) == ("volume", "myvol", True, True)
    anon = parse_mount({"Type": "volume", "Target": "/d", "VolumeOptions": {"NoCopy": True}})
    assert anon.source == "" and anon.copy_data is False


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        ({"Type": "bind", "Target": "/x"}, 'invalid mount config for type "bind": field Source must not be empty'),
        ({"Type": "bind", "Source": "/x"}, "field Target must not be empty"),
        ({"Type": "npipe", "Target": "/x"}, "mount type unknown"),
        ({"Type": "tmpfs", "Target": "/x", "Source": "s"}, "field Source must not be specified"),
        ({"Type": "bind", "Source": "rel", "Target": "/x"}, "mount path must be absolute"),
        ({"Type": "volume", "Target": "/x", "BindOptions": {"Propagation": "shared"}}, "BindOptions must not be specified"),
    ],
)
def test_parse_mount_errors(obj: dict[str, object], text: str) -> None:
    with pytest.raises(InvalidParameter, match=text):
        parse_mount(obj)


def test_plan_orders_parents_first_and_merges_config_volumes() -> None:
    p = plan(["/h/a:/data/sub", "v1:/data"], [{"Type": "bind", "Source": "/h/b", "Target": "/z"}], {"/data": {}, "/cache": {}})
    assert [(m.type, m.source, m.destination) for m in p] == [
        ("volume", "", "/cache"), ("volume", "v1", "/data"), ("bind", "/h/b", "/z"), ("bind", "/h/a", "/data/sub"),
    ]


def test_plan_duplicate_destination() -> None:
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /d"):
        plan(["/a:/d"], [{"Type": "volume", "Target": "/d/"}], None)
    assert plan(None, None, None) == []


def test_inspect_view_and_oci_mounts(tmp_path: Path) -> None:
    bind = inspect_view(parse_bind("/h:/c:ro"), "", "/h")
    assert bind == {"Type": "bind", "Source": "/h", "Destination": "/c", "Mode": "ro", "RW": False, "Propagation": "rprivate"}
    vol = inspect_view(parse_bind("vv:/d"), "vv", str(tmp_path))
    assert vol == {"Type": "volume", "Name": "vv", "Source": str(tmp_path), "Destination": "/d", "Driver": "local",
                   "Mode": "z", "RW": True, "Propagation": ""}
    assert oci_mounts([vol, bind]) == (
        {"destination": "/c", "type": "bind", "source": "/h", "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/d", "type": "bind", "source": str(tmp_path), "options": ["rbind", "rw", "rprivate"]},
    )


def test_tmpfs_plan_options_and_oci_mounts() -> None:
    from berth.daemon.mountspec import merge_tmpfs_options, plan, tmpfs_mount_data, tmpfs_mounts

    got = plan(None, [{"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"SizeBytes": 3 << 20, "Mode": 0o1770}}],
               {"/t": {}}, {"/t": "size=1m,exec"})
    assert [(m.type, m.destination, m.listed) for m in got] == [("tmpfs", "/m", True), ("tmpfs", "/t", False)]
    assert tmpfs_mount_data({"SizeBytes": 1536, "Mode": 0o700}, True) == "ro,mode=700,size=1536"
    assert tmpfs_mount_data({"SizeBytes": 3 << 30}, False) == "size=3g"
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "size=2m"]) == [
        "nosuid", "nodev", "rprivate", "exec", "size=2m"]
    host = {"Tmpfs": {"/t": "exec,size=1m"}, "Mounts": [{"Type": "tmpfs", "Target": "/m", "ReadOnly": True}]}
    assert tmpfs_mounts(host) == [
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "rprivate", "exec", "size=1m"]},
        {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "nosuid", "nodev", "rprivate", "ro"]},
    ]
    with pytest.raises(InvalidParameter, match=r'invalid tmpfs option \["bogus" "1"\]'):
        plan(None, None, None, {"/t": "bogus=1"})
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /t"):
        plan(["vv:/t"], None, None, {"/t": ""})


def test_volume_subpath_is_checked_lexically() -> None:
    from berth.daemon.mountspec import parse_mount

    assert parse_mount({"Type": "volume", "Source": "vv", "Target": "/m", "VolumeOptions": {"Subpath": "a/b"}}).subpath == "a/b"
    for bad in ("../x", "/abs", "a/../../x"):
        with pytest.raises(InvalidParameter, match="subpath must be a relative path within the volume"):
            parse_mount({"Type": "volume", "Source": "vv", "Target": "/m", "VolumeOptions": {"Subpath": bad}})
