"""The event bus: what happened to containers, images, networks and volumes.

Events have Docker's shape (``Type``, ``Action``, ``Actor{ID, Attributes}``, ``time``,
``timeNano`` and the legacy ``status``/``id``/``from``). The bus keeps the last ``keep`` events
for ``GET /events?since=`` and hands new ones to each subscriber's queue.

    bus.publish("container", "start", cid, {"name": "web", "image": "busybox"})
    q = bus.subscribe(); event = await q.get(); bus.unsubscribe(q)
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


class EventBus:
    def __init__(self, keep: int = 1000) -> None:
        self.history: collections.deque[Event] = collections.deque(maxlen=keep)
        self.subscribers: set[asyncio.Queue[Event]] = set()
        self.sinks: list[Callable[[Event], None]] = []  # e.g. the daemon's persistent event log

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> Event:
        now = time.time_ns()
        event: Event = {}
        if type_ in ("container", "image"):
            # dockerd's legacy status/id/from, first and only when not empty (omitempty)
            event["status"] = action
            if actor_id:
                event["id"] = actor_id
            if type_ == "container" and attributes.get("image"):
                event["from"] = attributes["image"]
        event.update({
            "Type": type_,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(sorted(attributes.items()))},  # Go sorts map keys
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        })
        self.history.append(event)
        for sink in self.sinks:
            sink(event)
        for queue in self.subscribers:
            queue.put_nowait(event)
        return event

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self.subscribers.discard(queue)


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event/action, container/image/network/volume, label."""
    actor = event["Actor"]
    attrs = actor["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = event["Type"] in values
        elif key in ("event", "action"):
            ok = event["Action"] in values or event["Action"].split(":")[0] in values
        elif key in ("container", "image", "network", "volume"):
            ok = event["Type"] == key and (
                actor["ID"] in values
                or attrs.get("name") in values
                or any(actor["ID"].startswith(v) for v in values)
            )
            if key == "image" and event["Type"] == "container":
                ok = attrs.get("image") in values
        elif key == "label":
            ok = any(
                (attrs.get(v.split("=", 1)[0]) == v.split("=", 1)[1]) if "=" in v else v in attrs
                for v in values
            )
        else:
            ok = True
        if not ok:
            return False
    return True
