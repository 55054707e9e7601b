"""The local volume store: records in berth.db, directories under volumes/<name>/_data."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.daemon.volumestore import ANONYMOUS_LABEL, VolumeStore
from berth.errors import InvalidParameter, NotFound


def test_create_get_list_remove(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    v, new = store.create("data", labels={"a": "b"})
    assert new and v["Name"] == "data" and v["Labels"] == {"a": "b"} and v["Scope"] == "local"
    assert v["Mountpoint"] == str(tmp_path / "volumes" / "data" / "_data") and Path(v["Mountpoint"]).is_dir()
    assert store.create("data") == (v, False)  # an existing name gives the existing volume
    anon, new = store.create()
    assert new and len(anon["Name"]) == 64 and anon["Labels"] == {ANONYMOUS_LABEL: ""}
    assert [x["Name"] for x in store.all()] == sorted(["data", anon["Name"]])
    (Path(v["Mountpoint"]) / "f").write_bytes(b"12345")
    assert store.size("data") == 5
    store.remove("data")
    assert not (tmp_path / "volumes" / "data").exists()
    with pytest.raises(NotFound, match="get data: no such volume"):
        store.get("data")
    store.close()
    reopened = VolumeStore(tmp_path)  # records survive a restart
    assert [x["Name"] for x in reopened.all()] == [anon["Name"]]
    reopened.close()


def test_create_refuses_other_drivers_and_bad_names(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    with pytest.raises(InvalidParameter, match="volume driver 'nfs' is not supported"):
        store.create("x1", driver="nfs")
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        store.create("a/b")
    store.close()
