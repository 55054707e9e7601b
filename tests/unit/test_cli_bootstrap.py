"""berth image bootstrap busybox: the rootfs tar, static-binary detection."""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile

import pytest

from berth.cli.commands.bootstrap import (
    elf_interpreter,
    is_static,
    list_applets,
    rootfs_members,
    tar_stream,
)


@pytest.fixture
def fake_busybox(tmp_path):
    """An executable that answers --list-full like busybox (a shell script; content is opaque)."""
    path = tmp_path / "busybox"
    path.write_text(
        "#!/bin/sh\nprintf 'bin/sh\\nbin/ls\\nusr/bin/awk\\nsbin/ifconfig\\nbin/busybox\\nusr/local/bin/x\\n'\n"
    )
    path.chmod(0o755)
    return str(path)


def build(applets, source):
    data = b"".join(tar_stream(rootfs_members(applets, source), mtime=1_700_000_000, chunk=1000))
    assert len(data) % tarfile.RECORDSIZE == 0
    return tarfile.open(fileobj=io.BytesIO(data)), data


def test_applets_are_listed_and_linked(fake_busybox):
    applets = list_applets(fake_busybox)
    assert applets == ["bin/sh", "bin/ls", "usr/bin/awk", "sbin/ifconfig", "bin/busybox", "usr/local/bin/x"]
    tar, _ = build(applets, fake_busybox)
    members = {m.name: m for m in tar.getmembers()}
    for name in ("bin/sh", "bin/ls", "usr/bin/awk", "sbin/ifconfig", "usr/local/bin/x"):
        assert members[name].issym() and members[name].linkname == "/bin/busybox"
    # a directory only an applet needed is created before the link
    names = list(members)
    assert names.index("usr/local/bin") < names.index("usr/local/bin/x")
    binary = members["bin/busybox"]
    assert binary.isfile() and binary.mode == 0o755
    with open(fake_busybox, "rb") as fh:
        assert tar.extractfile(binary).read() == fh.read()
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 1_700_000_000 for m in tar.getmembers())


def test_passwd_group_and_directory_modes(fake_busybox):
    tar, _ = build([], fake_busybox)
    passwd = tar.extractfile("etc/passwd").read().decode().splitlines()
    users = {line.split(":")[0]: int(line.split(":")[2]) for line in passwd}
    assert users == {
        "root": 0,
        "daemon": 1,
        "bin": 2,
        "sys": 3,
        "sync": 4,
        "mail": 8,
        "www-data": 33,
        "nobody": 65534,
    }
    assert passwd[0] == "root:x:0:0:root:/root:/bin/sh"
    groups = {
        line.split(":")[0]: int(line.split(":")[2])
        for line in tar.extractfile("etc/group").read().decode().splitlines()
    }
    assert groups == {
        "root": 0,
        "daemon": 1,
        "bin": 2,
        "sys": 3,
        "adm": 4,
        "tty": 5,
        "disk": 6,
        "mail": 8,
        "wheel": 10,
        "staff": 50,
        "www-data": 33,
        "users": 100,
        "nogroup": 65534,
    }
    modes = {m.name: stat.S_IMODE(m.mode) for m in tar.getmembers() if m.isdir()}
    assert modes["tmp"] == 0o1777 and modes["root"] == 0o700
    for d in ("home", "var", "etc", "bin", "dev", "proc", "sys"):
        assert d in modes


def test_tar_is_deterministic(fake_busybox):
    _, one = build(["bin/sh"], fake_busybox)
    _, two = build(["bin/sh"], fake_busybox)
    assert one == two


def test_elf_interpreter_detection(tmp_path):
    # the Python interpreter running the tests is a dynamically linked ELF
    assert elf_interpreter(os.path.realpath(sys.executable)) is True
    notelf = tmp_path / "x"
    notelf.write_text("#!/bin/sh\n")
    assert is_static(str(notelf)) is False


@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="no /bin/busybox on this machine")
def test_real_busybox_static_and_lists_sh():
    if not is_static("/bin/busybox"):
        pytest.skip("/bin/busybox is the dynamically linked build (busybox, not busybox-static)")
    applets = list_applets("/bin/busybox")
    assert "bin/sh" in applets and len(applets) > 100


def test_bootstrap_streams_the_tar_to_import(fake_busybox, monkeypatch, capsys):
    import uuid

    from berth.cli.commands import bootstrap as bootstrap_mod
    from berth.cli.main import main
    from berth.client.fake import FakeDaemon

    monkeypatch.setattr(bootstrap_mod, "is_static", lambda path: True)  # the fake is a script
    got = {}

    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        got["req"] = req
        reply.begin_chunked()
        reply.chunk(b'{"status":"sha256:feedbeef"}\r\n')
        return reply.end_chunked()

    path = f"/tmp/bcb-{uuid.uuid4().hex[:10]}.sock"
    with FakeDaemon(path, handler):
        code = main(
            [
                "-H",
                f"unix://{path}",
                "image",
                "bootstrap",
                "busybox",
                "--busybox",
                fake_busybox,
                "--tag",
                "bb:test",
            ]
        )
    out, err = capsys.readouterr()
    assert (code, out, err) == (0, "sha256:feedbeef\n", "")
    req = got["req"]
    assert req.target.startswith("/v1.45/images/create?")
    assert req.query == {"changes": 'CMD ["sh"]', "fromSrc": "-", "repo": "bb:test"}
    assert req.headers["transfer-encoding"] == "chunked"
    tar = tarfile.open(fileobj=io.BytesIO(req.body))
    assert tar.getmember("bin/sh").linkname == "/bin/busybox"
    assert tar.extractfile("etc/passwd").read().startswith(b"root:x:0:0:")


def test_bootstrap_refuses_a_dynamic_busybox_path(tmp_path, capsys):
    from berth.cli.main import main

    code = main(
        ["-H", f"unix://{tmp_path}/none.sock", "image", "bootstrap", "busybox", "--busybox", sys.executable]
    )
    _, err = capsys.readouterr()
    assert code == 1 and "not a statically linked ELF binary" in err
