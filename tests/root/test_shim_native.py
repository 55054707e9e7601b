"""The shim's libcontainer runtime on the real kernel: the init's report and barrier pipes are the
shim's (the create helper only makes the init), also through a user namespace's two stages;
and the spare shim's standby helper is used, then replaced for the next container."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.exec import CreateRequest, NativeDriver
from berth.libcontainer.cgroups import open_cgroup
from berth.libcontainer.testing import BUSYBOX, busybox_rootfs, docker_like_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, mounts and cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"),
]

HOST_ID = 231072  # an unprivileged range nobody on the host uses


class World:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        # the container's root may be an unprivileged host uid: every directory on the way 0755
        self.top = Path(tempfile.mkdtemp(prefix="berth-shimrt-"))
        self.top.chmod(0o755)
        self.rootfs = busybox_rootfs(self.top / "rootfs")
        self.exec_root = Path(f"/run/bsr-{tag}")
        self.parent = f"berth-test-{tag}"

    def request(self, args: list[str], userns: bool = False) -> CreateRequest:
        cid = uuid.uuid4().hex
        spec = docker_like_spec(str(self.rootfs), args, network=False)
        spec["linux"]["cgroupsPath"] = f"{self.parent}/{cid}"
        if userns:
            spec["linux"]["namespaces"].append({"type": "user"})
            spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
            spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
        bundle = self.top / cid[:12]
        return CreateRequest(id=cid, bundle=bundle, spec=spec, rootfs_mounts=[], log_path=bundle / "json.log")

    def cleanup(self) -> None:
        for path in open_cgroup(self.parent).paths():
            for child in path.glob("*/"):
                if child.is_dir():
                    child.rmdir()
            if path.is_dir():
                path.rmdir()
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.cleanup()


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def _collect(handle: object) -> tuple[bytes, int]:
    out = b""
    stream = handle.output()  # type: ignore[attr-defined]
    await handle.start()  # type: ignore[attr-defined]
    async for _kind, data in stream:
        out += data
    return out, (await handle.wait()).exit_code  # type: ignore[attr-defined]


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/user"), reason="the kernel has no user namespaces")
def test_a_container_in_a_user_namespace_starts_through_the_shims_own_pipes(world: World) -> None:
    async def scenario() -> None:
        driver = NativeDriver(world.exec_root, world.parent)
        await driver.startup()
        try:
            req = world.request(["sh", "-c", "id -u; cat /proc/self/uid_map"], userns=True)
            handle = await driver.create(req)
            out, code = await _collect(handle)
            assert code == 0, out
            lines = out.decode().split("\n")
            assert lines[0] == "0" and lines[1].split() == ["0", str(HOST_ID), "65536"]
            await driver.cleanup(req.id)
        finally:
            await driver.shutdown()

    run(scenario())


def test_spares_and_standby_helpers_serve_one_container_after_another(world: World) -> None:
    """Each create uses the spare shim and its standby helper; the next finds fresh ones (a
    helper used twice would hold the first container's pipes: its start would never end)."""

    async def scenario() -> None:
        driver = NativeDriver(world.exec_root, world.parent)
        await driver.startup()
        try:
            for n in range(4):
                req = world.request(["sh", "-c", f"echo run {n}"])
                handle = await driver.create(req)
                out, code = await _collect(handle)
                assert (out, code) == (f"run {n}\n".encode(), 0)
                await driver.cleanup(req.id)
            # found at create, but its interpreter is missing: the init's execve fails after
            # the barrier, as the process's own failure (runc's behaviour): 127 and its text
            script = world.rootfs / "bad.sh"
            script.write_text("#!/nonexistent/interpreter\n")
            script.chmod(0o755)
            missing = world.request(["/bad.sh"])
            out, code = await _collect(await driver.create(missing))
            assert code == 127 and b"/bad.sh" in out, out
            await driver.cleanup(missing.id)
        finally:
            await driver.shutdown()

    run(scenario())
