"""The seed's Engine: a table of job handlers, the live job table and the event bus.

``berth.jobs`` defines the jobs' requests; ``berth.api`` builds them; ``berth.daemon``
registers the handlers.
"""

from berth.engine.engine import Engine, Handler, UnknownJob
from berth.engine.events import EventBus
from berth.engine.job import ByteSink, ByteSource, Duplex, Job, MissingStream, StreamSink
from berth.engine.request import Request

__all__ = [
    "ByteSink", "ByteSource", "Duplex", "Engine", "EventBus", "Handler", "Job", "MissingStream", "Request",
    "StreamSink", "UnknownJob",
]
