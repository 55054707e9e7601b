"""The jobs' requests and results: what a front end may ask the engine, as typed values.

One module per object kind (containers, execs, images, networks, volumes, system). Each job has
a frozen request dataclass whose ``JOB`` is the job's name and whose generic parameter is its
result type. ``berth.api`` builds these from HTTP requests (a second front end, the CRI service,
will build the same ones); ``berth.daemon`` registers a handler per request type; nothing here
knows either of them::

    from berth.jobs.containers import ContainerStart
    await engine.job(ContainerStart(id="web"))

Results are JSON documents (Docker's shapes) typed as :mod:`berth.jobs.results` names them, or
None for jobs that answer with a status only or stream their output.
"""

from berth.jobs import archive, build, containers, execs, images, networks, system, volumes

__all__ = ["archive", "build", "containers", "execs", "images", "networks", "system", "volumes"]
