"""The shim's libcontainer runtime on the real kernel: the init's report and barrier pipes are the
shim's (the create helper only makes the init), also through a user namespace's two stages;
and the spare shim's standby helper is used, then replaced for the next container."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.exec import CreateRequest, NativeDriver
from berth.libcontainer.cgroups import is_unified, open_cgroup
from berth.libcontainer.cgroups.placeholder import PREFIX
from berth.libcontainer.seccompprofile import default_profile, to_oci
from berth.libcontainer.testing import BUSYBOX, DEFAULT_CAPS, busybox_rootfs, docker_like_spec
from harness import eventually

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


# ---- a standby's twin: the init forked ahead, in a pid namespace of its own (cgroup v1) ----------

twin_hosts = pytest.mark.skipif(is_unified("/sys/fs/cgroup"), reason="twins are forked where cgroup placeholders are made (cgroup v1)")


def _twin(parent: str) -> tuple[int, int]:
    """(the twin's host pid, its standby's) once the spare's standby forked its twin and the
    twin made and joined its placeholder (``berth-standby-<standby's pid>``)."""

    def made() -> tuple[int, int] | None:
        for procs in Path("/sys/fs/cgroup/pids", parent).glob(f"{PREFIX}*/cgroup.procs"):
            pids = [int(p) for p in procs.read_text().split()]
            if len(pids) == 1:
                return pids[0], int(procs.parent.name[len(PREFIX):])
        return None

    return eventually(made)  # type: ignore[no-any-return]


def _placeholders(parent: str) -> list[Path]:
    return [p for base in open_cgroup(parent).paths() for p in base.glob(f"{PREFIX}*")]


def _gone(pid: int) -> bool:
    """No such process (a zombie counts as gone only once reaped)."""
    return not os.path.exists(f"/proc/{pid}")


def _walls(pid: int, cid: str) -> dict[str, object]:
    """What confines a process at its barrier, seen from the host: its status lines (users,
    capabilities, no_new_privs, seccomp, its pid in its own namespace), its cgroups (the
    container's id made generic) and which of its namespaces are the host's."""
    keep = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
            "Seccomp_filters", "Umask")
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = {k: v.strip() for k, _, v in (line.partition(":") for line in lines) if k in keep}
    nspid = next(line for line in lines if line.startswith("NSpid:")).split()[1:]
    cgroups = sorted(Path(f"/proc/{pid}/cgroup").read_text().replace(cid, "<id>").splitlines())
    host_ns = {n: os.readlink(f"/proc/self/ns/{n}") != os.readlink(f"/proc/{pid}/ns/{n}")
               for n in ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user")}
    return {"status": status, "nspid": nspid[1:], "cgroups": cgroups, "own": host_ns,
            "session": os.getsid(pid) == pid}


@twin_hosts
def test_a_standbys_twin_becomes_the_init_with_the_walls_a_forked_init_has(world: World) -> None:
    """The spare's standby forks a twin ahead (pid 1 of a new pid namespace, in its cgroup
    placeholder), which becomes the container's init; a spec it cannot serve (here: a create
    hook) is handed back and the standby forks the init. Both inits are confined alike."""

    def request(hooks: bool) -> CreateRequest:
        req = world.request(["sh", "-c", "echo ok"])
        req.spec["process"]["noNewPrivileges"] = True
        req.spec["linux"]["seccomp"] = to_oci(default_profile(), list(DEFAULT_CAPS))
        req.spec["linux"]["namespaces"].append({"type": "cgroup"})
        if hooks:
            req.spec["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
        return req

    async def scenario() -> None:
        driver = NativeDriver(world.exec_root, world.parent)
        await driver.startup()
        try:
            seen = []
            for hooks in (False, True):
                twin, standby = await asyncio.to_thread(_twin, world.parent)
                req = request(hooks)
                handle = await driver.create(req)
                # a twin that was handed the work back is gone (reaped by its standby)
                assert (handle.pid == twin) is not hooks, (handle.pid, twin, standby)
                seen.append(_walls(handle.pid, req.id))
                assert await driver.pids(req.id) == [handle.pid]
                out, code = await _collect(handle)
                assert (out, code) == (b"ok\n", 0)
                await driver.cleanup(req.id)
                assert _gone(standby)
            assert seen[0] == seen[1]
            assert seen[0]["nspid"] == ["1"] and seen[0]["session"] is True
            assert seen[0]["own"] == {"pid": True, "mnt": True, "uts": True, "ipc": True, "net": False,
                                      "cgroup": True, "user": False}
            assert seen[0]["status"]["NoNewPrivs"] == "1" and seen[0]["status"]["Seccomp"] == "2"  # type: ignore[index]
        finally:
            await driver.shutdown()

    run(scenario())


@twin_hosts
def test_an_unused_twin_leaves_nothing_at_shutdown_nor_when_its_shim_or_itself_is_killed(world: World) -> None:
    """A twin never given work: gone with its placeholder when the driver shuts down, when the
    spare shim holding its standby is SIGKILLed, and when the twin itself is killed (the create
    then falls back to a helper, and the placeholder goes with the standby)."""

    async def scenario() -> None:
        driver = NativeDriver(world.exec_root, world.parent)
        await driver.startup()
        try:
            # the twin itself killed: the next create is served anyway, and nothing is left
            twin, standby = await asyncio.to_thread(_twin, world.parent)
            os.kill(twin, signal.SIGKILL)
            await asyncio.to_thread(eventually, lambda: _gone(twin))  # its standby reaps it
            req = world.request(["sh", "-c", "echo ok"])
            handle = await driver.create(req)
            assert handle.pid != twin
            assert await _collect(handle) == (b"ok\n", 0)
            await driver.cleanup(req.id)
            assert _gone(standby)  # the shim found it could not give it the work, and dismissed it
            assert not [p for p in _placeholders(world.parent) if p.name == f"{PREFIX}{standby}"]
            # at shutdown: the spare dismissed, its standby and twin with it
            twin, standby = await asyncio.to_thread(_twin, world.parent)
        finally:
            await driver.shutdown()
        await asyncio.to_thread(eventually, lambda: _gone(twin) and _gone(standby))
        assert _placeholders(world.parent) == []
        # the spare shim killed (its standby's socket closes): the twin leaves its placeholder,
        # removes it and exits; its standby reaps it
        driver = NativeDriver(world.exec_root, world.parent)
        await driver.startup()
        try:
            twin, standby = await asyncio.to_thread(_twin, world.parent)
            spare = int(Path(f"/proc/{standby}/status").read_text().split("PPid:")[1].split()[0])
            os.kill(spare, signal.SIGKILL)
            await asyncio.to_thread(eventually, lambda: _gone(twin))
            assert _placeholders(world.parent) == []
        finally:
            await driver.shutdown()

    run(scenario())
