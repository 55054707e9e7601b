"""The shim: one small single-threaded process per container (containerd-shim / conmon in Python).

It owns the container's stdio and log, serves attach, exec and control requests on
``<exec_root>/<id>/monitor.sock``, reaps the container and records its exit. The fork server
(:mod:`berth.shim.forkserver`) forks one per container; docs/monitor.md says how and why.
"""
