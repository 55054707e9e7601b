"""Create bodies: validation (400 naming the field) and merging with the image's config."""

from __future__ import annotations

import pytest

from berth.daemon import createconfig
from berth.daemon.users import lookup
from berth.errors import ContainerStartError, InvalidParameter

IMAGE = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/w", "Labels": {"l": "image"}}


def test_wrong_types_name_the_field() -> None:
    with pytest.raises(InvalidParameter, match="field ContainerConfigWrapper.Tty of type bool$"):
        createconfig.validate({"Image": "x", "Tty": "yes"})
    with pytest.raises(InvalidParameter, match="HostConfig.HostConfig.Memory of type int64$"):
        createconfig.validate({"Image": "x", "HostConfig": {"Memory": "lots"}})
    with pytest.raises(InvalidParameter, match="ContainerConfigWrapper.Env of type string$"):
        createconfig.validate({"Image": "x", "Env": [1]})
    createconfig.validate({"Image": "x", "Cmd": "echo hi", "HostConfig": {"Memory": 0}})


def test_names() -> None:
    assert createconfig.validate_name("/web-1") == "web-1"
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        createconfig.validate_name("bad name")


def test_merge_with_the_image() -> None:
    config, host = createconfig.merge(
        {
            "Image": "busybox",
            "Env": ["A=2", "B=3"],
            "Labels": {"m": "mine"},
            "HostConfig": {"Memory": 64 << 20},
        },
        IMAGE,
    )
    assert config["Cmd"] == ["sh"] and config["Entrypoint"] is None
    assert config["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert config["WorkingDir"] == "/w" and config["Labels"] == {"l": "image", "m": "mine"}
    assert host["Memory"] == 64 << 20 and host["LogConfig"]["Type"] == "json-file"
    # an entrypoint given at create time drops the image's Cmd
    config, _ = createconfig.merge({"Image": "b", "Entrypoint": ["echo"]}, IMAGE)
    assert config["Entrypoint"] == ["echo"] and config["Cmd"] is None


def test_no_command_and_bad_limits() -> None:
    with pytest.raises(InvalidParameter, match="No command specified"):
        createconfig.merge({"Image": "b"}, {})
    with pytest.raises(InvalidParameter, match="Minimum memory"):
        createconfig.merge({"Image": "b", "Cmd": ["x"], "HostConfig": {"Memory": 1024}}, {})


PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n"
GROUP = "root:x:0:\nwww-data:x:33:\nstaff:x:50:bob\nusers:x:100:bob,alice\n"


def test_user_lookup() -> None:
    # the primary gid is always a supplementary group (dockerd >= 20.10.18, CVE-2022-36109);
    # /etc/group memberships only when --user names no group (runc's rule)
    assert lookup("0", PASSWD, GROUP) == (0, 0, [0])
    assert lookup("www-data", PASSWD, GROUP) == (33, 33, [33])
    assert lookup("bob", PASSWD, GROUP) == (1000, 1000, [1000, 50, 100])
    assert lookup("1000:50", PASSWD, GROUP) == (1000, 50, [50])
    assert lookup("4242", PASSWD, GROUP) == (4242, 0, [0])
    assert lookup("bob:staff", PASSWD, GROUP)[1] == 50
    with pytest.raises(ContainerStartError, match="unable to find user nosuch"):
        lookup("nosuch", PASSWD, GROUP)


def test_log_config_defaults_to_json_file() -> None:
    _, host = createconfig.merge({"Image": "b", "Cmd": ["x"], "HostConfig": {"LogConfig": {"Type": "", "Config": {}}}}, {})
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}}
    with pytest.raises(InvalidParameter, match="logging driver 'syslog' is not supported"):
        createconfig.merge({"Image": "b", "Cmd": ["x"], "HostConfig": {"LogConfig": {"Type": "syslog"}}}, {})
