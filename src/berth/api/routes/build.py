"""``POST /build`` (the classic builder) and ``POST /build/prune``.

The query is dockerd's (``t`` repeated, ``dockerfile``, ``buildargs`` and ``labels`` as JSON
objects, ``target``, ``nocache``, ``pull``, ``rm`` -- true unless given --, ``forcerm``,
``q``, ``networkmode``, ``extrahosts``, ``platform``, resource limits, ``cachefrom``), the
body the context tar, ``X-Registry-Config`` the credentials for pulls. The reply is the
build's JSON stream (:mod:`berth.builder.output`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from berth import jsondoc
from berth.api.context import engine_of
from berth.api.streams import LazyResponseSink, RequestSource, qbool, qfilters, qint, reply
from berth.builder.output import encode
from berth.builder.request import BuildRequest
from berth.errors import BerthError, InvalidParameter, Unimplemented
from berth.graph import reference
from berth.jobs.build import BuildPrune, ImageBuild

routes = web.RouteTableDef()


def _json_query(request: web.Request, name: str, kind: type) -> Any:
    raw = request.query.get(name, "")
    if not raw:
        return kind()
    value = jsondoc.loads(raw, f"invalid {name}")
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidParameter(f"invalid {name}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


def _registry_config(header: str) -> dict[str, Any]:
    if not header:
        return {}
    try:
        std = header.strip().replace("-", "+").replace("_", "/")
        raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("invalid X-Registry-Config header: not base64-encoded JSON") from None
    value = jsondoc.loads(raw, "invalid X-Registry-Config header") if raw.strip() else {}
    if not isinstance(value, dict):
        raise InvalidParameter("invalid X-Registry-Config header: not a JSON object")
    return value


def build_request(request: web.Request) -> BuildRequest:
    q = request.query
    if q.get("remote"):
        raise Unimplemented("remote build contexts (git repositories, URLs) are not supported by berth")
    if q.get("version", "1") == "2":
        raise InvalidParameter("berth has no BuildKit: use the classic builder (version=1, DOCKER_BUILDKIT=0)")
    if qbool(request, "squash"):
        raise InvalidParameter("squash is only supported with experimental mode")
    tags = tuple(q.getall("t", []))
    for tag in tags:
        try:
            ref = reference.parse(tag)
        except BerthError:
            raise InvalidParameter(f"invalid reference format: {tag}") from None
        if ref.digest:
            raise InvalidParameter(f"invalid tag {tag}: a tag cannot name a digest")
    args = _json_query(request, "buildargs", dict)
    for key, value in args.items():
        if value is not None and not isinstance(value, str):
            raise InvalidParameter(f"invalid buildargs: the value of {key} is not a string")
    labels = _json_query(request, "labels", dict)
    for key, value in labels.items():
        if not isinstance(value, str):
            raise InvalidParameter(f"invalid labels: the value of {key} is not a string")
    hosts: list[str] = []
    for item in q.getall("extrahosts", []):
        hosts.extend(h for h in item.split(",") if h)
    cache_from = _json_query(request, "cachefrom", list)
    return BuildRequest(
        tags=tags,
        dockerfile=q.get("dockerfile", "") or "",
        build_args=tuple(sorted(args.items())),
        labels=tuple(sorted(labels.items())),
        target=q.get("target", ""),
        no_cache=qbool(request, "nocache"),
        pull=qbool(request, "pull"),
        rm=qbool(request, "rm", default=True),
        force_rm=qbool(request, "forcerm"),
        quiet=qbool(request, "q"),
        network_mode=q.get("networkmode", "") or "default",
        extra_hosts=tuple(hosts),
        platform=q.get("platform", ""),
        memory=qint(request, "memory", 0) or 0,
        memory_swap=qint(request, "memswap", 0) or 0,
        cpu_shares=qint(request, "cpushares", 0) or 0,
        cpu_period=qint(request, "cpuperiod", 0) or 0,
        cpu_quota=qint(request, "cpuquota", 0) or 0,
        cpuset_cpus=q.get("cpusetcpus", ""),
        shm_size=qint(request, "shmsize", 0) or 0,
        cache_from=tuple(str(v) for v in cache_from),
        registry_auth=_registry_config(request.headers.get("X-Registry-Config", "")),
    )


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    req = build_request(request)
    sink = LazyResponseSink(request)
    try:
        job = ImageBuild(request=req, tags=" ".join(req.tags), dockerfile=req.dockerfile or "Dockerfile")
        await engine_of(request).job(job, stdin=RequestSource(request), stdout=sink)
    except BerthError as exc:
        if sink.resp is None:
            raise
        await sink.write(encode({"errorDetail": {"message": exc.message}, "error": exc.message}))
    return await sink.finish()


@routes.post("/build/prune")
async def prune(request: web.Request) -> web.Response:
    qfilters(request)  # checked; the classic cache has no filters to apply
    return reply(await engine_of(request).job(BuildPrune(all=qbool(request, "all"))))
