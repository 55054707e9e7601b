"""The engine: handler table, job records, history, events."""

from __future__ import annotations

import asyncio

import pytest

from berth.engine import Engine, Job, MissingStream, Request, UnknownJob
from berth.engine.events import matches
from berth.errors import NotFound
from berth.jobs.containers import ContainerStart, ContainerWait
from berth.jobs.images import ImagePull
from berth.registry.auth import Credentials


def test_jobs_run_their_handler_and_are_recorded() -> None:
    engine = Engine(history=3)
    seen = []

    async def create(job):  # type: ignore[no-untyped-def]
        seen.append((job.name, job.args))
        assert job.id in engine.running
        return {"Id": job.args["name"]}

    async def boom(job):  # type: ignore[no-untyped-def]
        raise NotFound("No such container: x")

    engine.register("demo.create", create)
    engine.register("demo.start", boom)
    assert asyncio.run(engine.job("demo.create", name="web")) == {"Id": "web"}
    with pytest.raises(NotFound):
        asyncio.run(engine.job("demo.start", id="x"))
    with pytest.raises(UnknownJob, match="no handler"):
        asyncio.run(engine.job("nope"))
    assert seen == [("demo.create", {"name": "web"})]
    jobs = engine.jobs()
    assert [j.name for j in jobs] == ["demo.start", "demo.create"]
    assert jobs[0].status == "error" and jobs[0].error == "No such container: x"
    assert jobs[1].status == "ok" and jobs[1].duration_ms is not None and jobs[1].duration_ms >= 0
    summary = jobs[1].summary()
    assert summary["Name"] == "demo.create" and summary["Args"] == {"name": "web"}
    assert not engine.running


def test_register_twice_is_refused() -> None:
    engine = Engine()

    async def h(job):  # type: ignore[no-untyped-def]
        return None

    engine.register("a", h)
    with pytest.raises(ValueError):
        engine.register("a", h)


def test_running_jobs_are_listed_while_they_run() -> None:
    engine = Engine()
    gate = asyncio.Event()

    async def slow(job):  # type: ignore[no-untyped-def]
        await gate.wait()

    engine.register("slow", slow)

    async def scenario() -> None:
        task = asyncio.ensure_future(engine.job("slow"))
        await asyncio.sleep(0)
        listed = engine.jobs()
        assert [(j.name, j.status) for j in listed] == [("slow", "running")]
        assert listed[0].summary()["DurationMs"] is None
        gate.set()
        await task

    asyncio.run(scenario())
    assert engine.jobs()[0].status == "ok"


def test_event_bus_shapes_and_filters() -> None:
    engine = Engine()

    async def scenario() -> None:
        q = engine.events.subscribe()
        ev = engine.events.publish(
            "container", "start", "abc", {"name": "web", "image": "busybox", "tier": "x"}
        )
        assert await q.get() is ev
        engine.events.unsubscribe(q)

    asyncio.run(scenario())
    ev = engine.events.history[-1]
    assert ev["status"] == "start" and ev["id"] == "abc" and ev["from"] == "busybox"
    assert matches(ev, {"type": ["container"], "event": ["start"]})
    assert matches(ev, {"container": ["web"]}) and matches(ev, {"label": ["tier=x"]})
    assert not matches(ev, {"type": ["image"]}) and not matches(ev, {"label": ["tier=y"]})


def test_a_typed_request_picks_its_handler_and_is_read_as_fields() -> None:
    engine = Engine()
    seen: list[object] = []

    async def start(req: ContainerStart, job: Job) -> None:
        seen.append(req)

    engine.handle(ContainerStart, start)
    asyncio.run(engine.job(ContainerStart(id="web")))
    # the older call style builds the same request
    asyncio.run(engine.job("container.start", id="db"))
    assert seen == [ContainerStart(id="web"), ContainerStart(id="db")]
    assert [j.summary()["Args"] for j in engine.jobs()] == [{"id": "db"}, {"id": "web"}]
    with pytest.raises(TypeError, match="ContainerStart has no field nope"):
        asyncio.run(engine.job("container.start", id="x", nope=1))


def test_a_handler_of_the_older_style_reads_a_typed_request_as_args() -> None:
    engine = Engine()
    got: list[dict[str, object]] = []

    async def start(job):  # type: ignore[no-untyped-def]
        got.append(job.args)

    engine.register("container.start", start)
    asyncio.run(engine.job(ContainerStart(id="web")))
    assert got == [{"id": "web"}]


def test_jobs_list_never_shows_credentials() -> None:
    engine = Engine()

    async def pull(req: ImagePull, job: Job) -> None:
        return None

    engine.handle(ImagePull, pull)
    secret = Credentials("alice", "s3cret-password")
    asyncio.run(engine.job(ImagePull(image="busybox", auth=secret)))
    summary = engine.jobs()[0].summary()
    assert summary["Args"]["auth"] == "Credentials"
    assert "s3cret" not in repr(summary) and "s3cret" not in repr(engine.jobs()[0].request)


def test_check_names_the_jobs_without_a_handler() -> None:
    engine = Engine()

    async def start(req: ContainerStart, job: Job) -> None:
        return None

    engine.handle(ContainerStart, start)
    engine.check(["container.start"])
    with pytest.raises(UnknownJob, match="container.wait"):
        engine.check(["container.start", "container.wait"])


def test_a_streaming_job_without_its_stream_is_a_programming_error() -> None:
    engine = Engine()

    async def wait(req: ContainerWait, job: Job) -> None:
        await job.sink.write(b"")

    engine.handle(ContainerWait, wait)
    with pytest.raises(MissingStream, match="container.wait needs a stdout stream"):
        asyncio.run(engine.job(ContainerWait(id="x")))

    class Collect:  # a plain byte sink (no start): its first write is the start
        def __init__(self) -> None:
            self.data = b""

        async def write(self, data: bytes) -> None:
            self.data += data

    got = Collect()
    asyncio.run(engine.job(ContainerWait(id="x"), stdout=got))
    assert got.data == b""


def test_request_names_are_unique() -> None:
    from dataclasses import dataclass
    from typing import ClassVar

    with pytest.raises(TypeError, match="already the name"):

        @dataclass(frozen=True)
        class Another(Request[None]):
            JOB: ClassVar[str] = "container.start"
