"""``docker system df``: the space images, containers, volumes and the build cache take.

As dockerd computes it: ``LayersSize`` counts every image layer once; each image's ``Size`` is
its layers', its ``SharedSize`` the part in layers other images use too (the CLI shows
``Size - SharedSize`` as its unique size) and ``Containers`` how many containers use it; each
container comes with ``SizeRw`` (its own layer) and ``SizeRootFs``; each volume with
``UsageData`` (the containers that mount it, and its size). The classic builder's cache is its
images, so ``BuildCache`` is null and ``BuilderSize`` 0, as dockerd answers without BuildKit.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from berth.daemon import netsettings
from berth.daemon.handlers import HandlerTable
from berth.daemon.volumes import users
from berth.engine import Job
from berth.jobs import system as jobs
from berth.jobs.results import JSONObject

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon
    from berth.graph.layerstore import LayerStore

handlers = HandlerTable()


def _images(d: Daemon) -> tuple[int, list[dict[str, Any]]]:
    graph = d.graph
    layers = {row.chain_id: row for row in graph.layers.rows()}
    chains: dict[str, list[str]] = {}
    refs: dict[str, int] = {}
    for row in graph.images.rows():
        chain, at = [], row.top_layer
        while at and at in layers:
            chain.append(at)
            at = layers[at].parent
        chains[row.id] = chain
        for chain_id in chain:
            refs[chain_id] = refs.get(chain_id, 0) + 1
    using: dict[str, int] = {}
    for c in d.live.records():
        using[c.image_id] = using.get(c.image_id, 0) + 1
    out = []
    for summary in graph.list(True, {}):
        chain = chains.get(summary["Id"], [])
        summary = dict(summary)
        summary["SharedSize"] = sum(layers[x].size for x in chain if refs.get(x, 0) > 1)
        summary["Containers"] = using.get(summary["Id"], 0)
        out.append(summary)
    return graph.layers_size(), out


def _layers_under(layers: LayerStore, container_id: str) -> int:
    """Bytes of the image layers under a container's layer: from the layer store, so a container
    whose image ``rmi -f`` deleted still counts them (they stay while it does)."""
    rw = layers.rw(container_id)
    return sum(row.size for row in layers.chain(rw.top_layer)) if rw is not None else 0


async def _containers(d: Daemon) -> list[dict[str, Any]]:
    out = []
    for c in sorted(d.live.records(), key=lambda c: c.created, reverse=True):
        row = c.summary(c.image)
        row["Ports"] = netsettings.summary_ports(c, d.network)
        row["NetworkSettings"] = {"Networks": netsettings.networks_view(c, d.network)}
        size_rw = await asyncio.to_thread(d.graph.rw_size, c.id)
        image_size = await asyncio.to_thread(_layers_under, d.graph.layers, c.id)
        # Go's omitempty: a size of 0 is left out
        row.update({k: v for k, v in (("SizeRw", size_rw), ("SizeRootFs", size_rw + image_size)) if v})
        out.append(row)
    return out


async def _volumes(d: Daemon) -> list[dict[str, Any]]:
    out = []
    for v in await asyncio.to_thread(d.volumes.all):
        v = dict(v)
        size = await asyncio.to_thread(d.volumes.size, v["Name"])
        v["UsageData"] = {"RefCount": len(users(d, v["Name"])), "Size": size}
        out.append(v)
    return out


@handlers.on(jobs.SystemDf)
async def df(d: Daemon, req: jobs.SystemDf, job: Job) -> JSONObject:
    wanted = set(req.types) or {"container", "image", "volume", "build-cache"}
    out: JSONObject = {}
    if "image" in wanted:
        out["LayersSize"], out["Images"] = await asyncio.to_thread(_images, d)
    if "container" in wanted:
        out["Containers"] = await _containers(d)
    if "volume" in wanted:
        out["Volumes"] = await _volumes(d)
    if "build-cache" in wanted:
        out["BuildCache"] = None
        out["BuilderSize"] = 0
    return out
