"""The ``image.build`` job's request: what ``POST /build`` (or ``berth build``) asked for.

A frozen value built by the API route from the query (dockerd's names in comments) and read
as fields by the builder::

    BuildRequest(tags=("app:1",), dockerfile="Dockerfile", build_args=(("X", "42"),), rm=True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BuildRequest:
    tags: tuple[str, ...] = ()                          # t (repeated)
    dockerfile: str = "Dockerfile"                      # dockerfile
    build_args: tuple[tuple[str, str | None], ...] = ()  # buildargs (JSON object; null = unset)
    labels: tuple[tuple[str, str], ...] = ()            # labels (JSON object)
    target: str = ""                                    # target
    no_cache: bool = False                              # nocache
    pull: bool = False                                  # pull
    rm: bool = True                                     # rm (default true)
    force_rm: bool = False                              # forcerm
    quiet: bool = False                                 # q
    network_mode: str = "default"                       # networkmode
    extra_hosts: tuple[str, ...] = ()                   # extrahosts
    platform: str = ""                                  # platform
    memory: int = 0                                     # memory
    memory_swap: int = 0                                # memswap
    cpu_shares: int = 0                                 # cpushares
    cpu_period: int = 0                                 # cpuperiod
    cpu_quota: int = 0                                  # cpuquota
    cpuset_cpus: str = ""                               # cpusetcpus
    shm_size: int = 0                                   # shmsize
    cache_from: tuple[str, ...] = ()                    # cachefrom: hits only from these images and their ancestors
    registry_auth: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)  # X-Registry-Config

    @property
    def args(self) -> dict[str, str | None]:
        return dict(self.build_args)
