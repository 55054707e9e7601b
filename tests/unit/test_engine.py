"""The engine: handler table, job records, history, events."""

from __future__ import annotations

import asyncio

import pytest

from berth.engine import Engine
from berth.engine.events import matches
from berth.errors import NotFound


def test_jobs_run_their_handler_and_are_recorded() -> None:
    engine = Engine(history=3)
    seen = []

    async def create(job):  # type: ignore[no-untyped-def]
        seen.append((job.name, job.args))
        assert job.id in engine.running
        return {"Id": job.args["name"]}

    async def boom(job):  # type: ignore[no-untyped-def]
        raise NotFound("No such container: x")

    engine.register("container.create", create)
    engine.register("container.start", boom)
    assert asyncio.run(engine.job("container.create", name="web")) == {"Id": "web"}
    with pytest.raises(NotFound):
        asyncio.run(engine.job("container.start", id="x"))
    with pytest.raises(NotFound, match="no handler"):
        asyncio.run(engine.job("nope"))
    assert seen == [("container.create", {"name": "web"})]
    jobs = engine.jobs()
    assert [j.name for j in jobs] == ["container.start", "container.create"]
    assert jobs[0].status == "error" and jobs[0].error == "No such container: x"
    assert jobs[1].status == "ok" and jobs[1].duration_ms is not None and jobs[1].duration_ms >= 0
    summary = jobs[1].summary()
    assert summary["Name"] == "container.create" and summary["Args"] == {"name": "web"}
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
