"""docker-py 7 against a real berthd: the SDK calls that tools built on it make."""

from __future__ import annotations

import time

import pytest

import harness

pytestmark = pytest.mark.integration


def test_dockerpy_run_logs_exec_stop_remove(berthd: harness.Berthd, busybox_image: str) -> None:
    docker = pytest.importorskip("docker", reason="docker-py is installed by scripts/setup.sh")
    client = berthd.client()
    assert client.containers.run(busybox_image, "echo hi", remove=True) == b"hi\n"
    c = client.containers.run(busybox_image, ["sh", "-c", "echo started; sleep 100"], detach=True, name="py1")
    deadline = time.monotonic() + 10
    while b"started" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.logs() == b"started\n"
    code, out = c.exec_run(["sh", "-c", "echo from-exec; exit 5"])
    assert (code, out) == (5, b"from-exec\n")
    c.reload()
    assert c.status == "running" and c.name == "py1"
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("py1")
    with pytest.raises(docker.errors.ContainerError) as err:
        client.containers.run(busybox_image, ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert err.value.exit_status == 3


def test_dockerpy_images(berthd: harness.Berthd, busybox_image: str) -> None:
    docker = pytest.importorskip("docker", reason="docker-py is installed by scripts/setup.sh")
    client = berthd.client()
    images = client.images.list()
    assert [t for img in images for t in img.tags] == ["busybox:latest"]
    img = client.images.get("busybox")
    assert img.id.startswith("sha256:") and img.attrs["Config"]["Cmd"] == ["sh"]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuch:tag")
