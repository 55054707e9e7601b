"""COPY, ADD and WORKDIR: steps that write a layer without a container.

COPY/ADD expand their words with the stage's environment, find the sources (the context,
``--from`` a stage or an image, heredocs), probe the cache with the sources' checksum, and on a
miss have :mod:`berth.builder.copier` write the layer tar while the graph applies it. WORKDIR
records the directory and, when the image lacks it, adds a layer that makes it (root, 0755).
``--chown`` names are looked up in the destination image's ``/etc/passwd`` and ``/etc/group``.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
import tarfile
import time
from typing import TYPE_CHECKING, Any

from berth.builder import copier
from berth.builder import instructions as ins
from berth.builder.cache import Detail
from berth.builder.imagefs import ImageFS
from berth.builder.remote import download, is_url
from berth.builder.shell import expand_text
from berth.builder.sources import ContextSource, FileSource, ImageSource, Source
from berth.errors import InvalidParameter

if TYPE_CHECKING:
    from berth.builder.dispatch import Dispatcher


async def workdir(d: Dispatcher, step: ins.Workdir) -> None:
    requested = d.expand(step.path)
    if not requested:
        raise InvalidParameter("cannot normalize nothing")
    current = d.config.get("WorkingDir") or "/"
    workdir = posixpath.normpath(requested if requested.startswith("/") else posixpath.join("/", current, requested))
    workdir = "/" + workdir.lstrip("/")
    d.config["WorkingDir"] = workdir
    comment = "WORKDIR " + workdir
    detail = d.metadata_detail(step, comment)
    probe = d.probe_config(d.shell() + ["#(nop) " + comment])
    key = await d.probe(probe, detail)
    if key is None:
        return
    parent = d.state.image_id
    fs = await d.image_fs(parent)
    missing = await asyncio.to_thread(_missing_dirs, fs, workdir)
    writer = (lambda out: _write_dirs(missing, fs, out)) if missing else None
    image_id = await d.host.derive(parent, writer, d.image_config(), probe, " ".join(probe["Cmd"]),
                                      d.state.author)
    await d.record(key, parent, image_id, detail)


async def copy(d: Dispatcher, step: ins.Copy) -> None:
    cmd = "ADD" if step.is_add else "COPY"
    env = d.env()
    docs = {}
    for doc in step.heredocs:
        data = expand_text(doc.content, env, d.lexer.escape) if doc.expand else doc.content
        docs[doc.name] = data.encode()
    heredocs: dict[str, bytes] = {}
    sources: list[str] = []
    for word in step.sources:
        match = re.fullmatch(r"\d*<<-?(['\"]?)([^'\"]+)\1", word)
        if match and match.group(2) in docs:
            sources.append("<<" + match.group(2))
            heredocs["<<" + match.group(2)] = docs[match.group(2)]
        else:
            sources.append(d.lexer.process_word(word, env))
    dest = d.lexer.process_word(step.dest, env)
    chown = d.lexer.process_word(step.chown, env) if step.chown else ""
    if not step.is_add and any(is_url(source) for source in sources):
        raise InvalidParameter("source can't be a URL for COPY")
    remote: dict[str, FileSource] = {}
    try:
        for source in sources if step.is_add else ():
            if is_url(source) and source not in remote:
                got = await download(source, d.host.tmp_dir)
                remote[source] = FileSource(got.path, got.name, got.mtime)
        await _copy(d, step, cmd, sources, heredocs, dest, chown, remote)
    finally:
        for fsrc in remote.values():
            os.unlink(fsrc.path)


async def _copy(d: Dispatcher, step: ins.Copy, cmd: str, sources: list[str], heredocs: dict[str, bytes], dest: str,
                chown: str, remote: dict[str, FileSource]) -> None:
    src: Source
    from_context = not step.from_
    if step.from_:
        src = await _from_source(d, d.expand(step.from_))
    else:
        src = ContextSource(d.build.context)
    plan = await asyncio.to_thread(copier.plan, src, sources, heredocs, step.is_add, cmd, from_context, remote)
    chown_comment = f"--chown={chown}" if chown else ""
    comment = f"{cmd} {chown_comment}{plan.checksum} in {dest} "
    probe = d.probe_config(d.shell() + ["#(nop) " + comment])
    args = d.referenced_args(step.text)
    detail = Detail(cmd, f"{cmd} {' '.join(sources)} {dest}", args, plan.files, plan.complete, identity=step.text)
    key = await d.probe(probe, detail)
    if key is None:
        return
    parent = d.state.image_id
    fs = await d.image_fs(parent)
    owner = await asyncio.to_thread(_identity, fs, chown) if chown else copier.Identity(0, 0)
    chmod = int(step.chmod, 8) if step.chmod else None
    workdir = d.config.get("WorkingDir") or "/"
    image_id = await d.host.derive(
        parent, lambda out: copier.write_layer(plan, src, fs, dest, workdir, owner, chmod, cmd, out),
        d.image_config(), probe, " ".join(probe["Cmd"]), d.state.author,
    )
    await d.record(key, parent, image_id, detail)


async def _from_source(d: Dispatcher, name: str) -> Source:
    image_id = d.build.stage_image(name)
    label = f"stage {name}"
    if image_id is None:
        image_id = await d.build.image_for(name, "")
        label = f"image {name}"
    fs = await d.image_fs(image_id)
    return ImageSource(fs, label)


def _missing_dirs(fs: ImageFS, path: str) -> list[str]:
    """The directories of ``path`` the image lacks (resolved inside the image)."""
    resolved = fs.resolve(path)
    parts = [p for p in resolved.split("/") if p]
    missing = []
    for depth in range(1, len(parts) + 1):
        sub = "/" + "/".join(parts[:depth])
        info = fs.lstat(sub)
        if info is None:
            missing.append(sub)
        elif info.kind != "dir":
            raise InvalidParameter(f"mkdir {path}: {sub} is not a directory")
    return missing


def _write_dirs(missing: list[str], fs: ImageFS, out: Any) -> None:
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if not missing:
            return
        parts = [p for p in missing[-1].split("/") if p]
        for depth in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:depth])
            info = tarfile.TarInfo(sub.lstrip("/"))
            info.type = tarfile.DIRTYPE
            existing = fs.lstat(sub)
            if existing is not None and sub not in missing:
                info.mode, info.uid, info.gid, info.mtime = existing.mode, existing.uid, existing.gid, int(existing.mtime)
            else:
                info.mode, info.mtime = 0o755, now
            tar.addfile(info)


def _identity(fs: ImageFS, chown: str) -> copier.Identity:
    """``--chown=user[:group]``: names looked up in the image's /etc/passwd and /etc/group."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    uid = _lookup(fs, "/etc/passwd", user, "user")
    gid = _lookup(fs, "/etc/group", group, "group")
    return copier.Identity(uid, gid)


def _lookup(fs: ImageFS, path: str, name: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    data = fs.read_small(path)
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    verb = "uid" if what == "user" else "gid"
    raise InvalidParameter(
        f"unable to convert uid/gid chown string to host mapping: can't find {verb} for {what} {name}: "
        f"no such {what}: {name}"
    )
