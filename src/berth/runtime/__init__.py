"""``berth-runtime``: berth's libcontainer behind the OCI runtime command line (runc's subset).

The command line lives here, above the library, as runc keeps its CLI apart from libcontainer
and youki its ``youki`` crate apart from ``libcontainer``: :mod:`berth.libcontainer` runs a spec
and never imports this package (an import-linter contract checks it).

    berth-runtime [--root DIR] create [--bundle DIR] [--pid-file F] [--console-socket SOCK] ID
    berth-runtime [--root DIR] start ID | state ID | kill ID [SIGNAL] | delete [--force] ID
    berth-runtime [--root DIR] run [--bundle DIR] [--detach] ID  # create + start + wait + delete
    berth-runtime [--root DIR] list | pause ID | resume ID | ps [--format json] ID
    berth-runtime [--root DIR] exec [--process FILE] [--detach] [--pid-file F] ID [ARGS...]

Modules: ``cli`` (the commands and their arguments), ``state`` (the state store under
``--root``: what was created, and its OCI status), ``bundle`` (reading a bundle's config.json,
the cgroup path, what the host cannot grant), ``hooks`` (OCI lifecycle hooks), ``errors``.

State lives in ``<root>/<id>/``: ``state.json`` (pid, the pid's start time so a reused pid is not
mistaken for the container, bundle, cgroup, annotations) and ``exec.fifo``. ``create`` forks
init, which waits holding the FIFO open read-write (it never sees EOF) and the command exits;
``start`` writes one byte into the FIFO and removes it. Status: ``stopped`` once the pid is gone
(or a zombie), ``created`` while the FIFO exists, ``paused`` when the cgroup is frozen, else
``running``.

The cgroup is ``linux.cgroupsPath`` (a cgroupfs path; systemd ``slice:prefix:name`` is not
supported) or ``berth-runtime/<id>``, with ``linux.resources`` converted as the daemon converts
its containers' (:func:`berth.libcontainer.cgroups.resources_from_oci`). With
``process.terminal`` init makes a pty inside the container and sends its master over
``--console-socket`` (SCM_RIGHTS), as runc does.
"""
