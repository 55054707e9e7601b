"""The live container table: state moves that refuse illegal ones, creates under way, removal."""

from __future__ import annotations

import asyncio

import pytest

from berth.container.record import Container
from berth.daemon.livecontainer import LiveContainer, LiveTable, Phase
from berth.errors import Conflict, NotFound


def _record(cid: str = "a" * 64, name: str = "web") -> Container:
    return Container(
        id=cid, name=name, created="2024-01-01T00:00:00Z", image="busybox", image_id="sha256:" + "b" * 64,
        path="sh", args=[], config={}, host_config={}, driver="overlay2", dir="/nonexistent",
    )


def test_state_moves_follow_the_life_of_a_container() -> None:
    lc = LiveContainer(_record())
    assert lc.state.status == "created"
    with pytest.raises(Conflict):
        lc.to_paused()  # created -> paused is not a move
    with pytest.raises(Conflict):
        lc.to_exited(0)  # nothing ran
    lc.to_running(42)
    with pytest.raises(Conflict):
        lc.to_running(43)  # running already
    lc.to_paused()
    with pytest.raises(Conflict):
        lc.to_paused()
    lc.to_unpaused()
    lc.to_exited(3)
    assert (lc.state.status, lc.state.exit_code, lc.state.pid) == ("exited", 3, 0)
    lc.to_running(44)  # a start again
    assert lc.state.status == "running"


def test_removal_refuses_a_running_container_and_a_second_removal() -> None:
    async def scenario() -> None:
        lc = LiveContainer(_record())
        lc.to_running(1)
        with pytest.raises(Conflict, match="running"):
            lc.begin_removal()
        lc.to_exited(0)
        done = lc.begin_removal()
        assert lc.state.status == "removing"
        with pytest.raises(Conflict, match="already in progress"):
            lc.begin_removal()
        with pytest.raises(Conflict, match="removing"):
            lc.to_running(2)  # start refuses a container being removed
        lc.end_removal(failed=True)
        assert done.done() and lc.state.status == "dead"
        with pytest.raises(Conflict, match="dead"):
            lc.to_running(2)
        lc.begin_removal()  # rm may be tried again

    asyncio.run(scenario())


def test_a_create_under_way_takes_its_name_but_is_not_found() -> None:
    table = LiveTable()
    table.reserve(_record("c" * 64, "db"))
    assert table.names() == {"db": "c" * 64}
    with pytest.raises(NotFound):
        table.find("db")
    assert list(table) == [] and "c" * 64 not in table
    table.discard("c" * 64)  # the create failed
    assert table.names() == {}


def test_removing_closes_every_piece_and_resolves_every_waiter() -> None:
    async def scenario() -> None:
        table = LiveTable()
        lc = table.add(LiveContainer(_record()))
        lc.to_running(1)
        next_exit = lc.wait_for("next-exit")
        removed = lc.wait_for("removed")
        health = asyncio.ensure_future(asyncio.sleep(60))
        lc.health = health
        lc.execs["e" * 64] = object()  # type: ignore[assignment]
        lc.to_exited(7)
        lc.settled(7)
        assert next_exit.result() == 7 and not removed.done()
        assert table.find("web") is lc and table.find("aaaa") is lc
        table.remove(lc.id)
        await asyncio.sleep(0)
        assert removed.result() == 7
        assert health.cancelled() and lc.health is None and lc.execs == {}
        assert lc.phase is Phase.GONE and table.get(lc.id) is None and table.any(lc.id) is None
        with pytest.raises(NotFound, match="No such container: web"):
            table.find("web")

    asyncio.run(scenario())


def test_a_waiter_that_gave_up_is_forgotten() -> None:
    async def scenario() -> None:
        lc = LiveContainer(_record())
        fut = lc.wait_for("next-exit")
        lc.forget_waiter(fut)
        assert fut.cancelled() and lc.waiters == []

    asyncio.run(scenario())
