"""The seed's Engine: a table of named job handlers, the live job table and the event bus.

``berth.api`` knows job names only; ``berth.daemon`` registers the handlers.
"""

from berth.engine.engine import Engine, Handler
from berth.engine.events import EventBus
from berth.engine.job import Job

__all__ = ["Engine", "EventBus", "Handler", "Job"]
