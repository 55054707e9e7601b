"""``berth images``, ``berth tag``, ``berth rmi``: the image store, as the docker CLI shows it.

One row per (repository, tag) of each image, ``<none>`` for dangling images; with ``--digests``
one row per digest too (docker's imageFormatTaggedAndDigest). Row fields (``--format``):
ID, Repository, Tag, Digest, CreatedSince, CreatedAt, Size, Containers, SharedSize,
UniqueSize, VirtualSize.
"""

from __future__ import annotations

import json

from berth.cli.commands.ps import checked_filters
from berth.cli.formatter import render
from berth.cli.options import Command, Flag
from berth.cli.reference import familiar_name, normalize_name, path_escape, split_digest, split_tag
from berth.cli.units import go_time_string, human_size, since
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IMAGES_SPEC = Command(
    "images",
    "berth images [OPTIONS] [REPOSITORY[:TAG]]",
    "List images",
    (
        Flag(("-a", "--all"), help="Show all images (default hides intermediate images)"),
        Flag(("--digests",), help="Show digests"),
        Flag(("-f", "--filter"), "list", "Filter output based on conditions provided"),
        Flag(("--format",), "value", "Format output using a custom template"),
        Flag(("--no-trunc",), help="Don't truncate output"),
        Flag(("-q", "--quiet"), help="Only show image IDs"),
    ),
    max_args=1,
)
TAG_SPEC = Command(
    "tag",
    "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    (),
    min_args=2,
    max_args=2,
)
RMI_SPEC = Command(
    "rmi",
    "berth rmi [OPTIONS] IMAGE [IMAGE...]",
    "Remove one or more images",
    (
        Flag(("-f", "--force"), help="Force removal of the image"),
        Flag(("--no-prune",), help="Do not delete untagged parents"),
    ),
    min_args=1,
)

HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "SIZE",
}
DEFAULT_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DIGEST_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


class ImageRow:
    def __init__(
        self, img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool, now: float | None = None
    ) -> None:
        self._i = img
        self._now = now
        self.Repository = repo
        self.Tag = tag
        self.Digest = digest
        self._trunc = trunc

    @property
    def ID(self) -> str:
        iid = self._i.get("Id", "")
        return str(iid.removeprefix("sha256:")[:12] if self._trunc else iid)

    @property
    def CreatedSince(self) -> str:
        created = self._i.get("Created") or 0
        return since(float(created), self._now) if created > 0 else "N/A"

    @property
    def CreatedAt(self) -> str:
        return go_time_string(float(self._i.get("Created") or 0))

    @property
    def Size(self) -> str:
        return human_size(self._i.get("Size") or 0)

    @property
    def VirtualSize(self) -> str:
        return human_size(self._i.get("VirtualSize") or self._i.get("Size") or 0, 4)

    @property
    def Containers(self) -> str:
        n = self._i.get("Containers", -1)
        return "N/A" if n is None or n < 0 else str(n)

    @property
    def SharedSize(self) -> str:
        n = self._i.get("SharedSize", -1)
        return "N/A" if n is None or n < 0 else human_size(n, 4)

    @property
    def UniqueSize(self) -> str:
        n = self._i.get("SharedSize", -1)
        return "N/A" if n is None or n < 0 else human_size((self._i.get("Size") or 0) - n, 4)

    def json_fields(self) -> dict[str, str]:
        return {
            k: getattr(self, k)
            for k in (
                "Containers",
                "CreatedAt",
                "CreatedSince",
                "Digest",
                "ID",
                "Repository",
                "SharedSize",
                "Size",
                "Tag",
                "UniqueSize",
                "VirtualSize",
            )
        }


def _dangling(img: dict[str, Any]) -> bool:
    tags = img.get("RepoTags") or []
    digests = img.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def image_rows(
    img: dict[str, Any], show_digests: bool, trunc: bool, now: float | None = None
) -> list[ImageRow]:
    def row(repo: str, tag: str, digest: str) -> ImageRow:
        return ImageRow(img, repo, tag, digest, trunc, now)

    if _dangling(img):
        return [row("<none>", "<none>", "<none>")]
    repo_tags: dict[str, list[str]] = {}
    repo_digests: dict[str, list[str]] = {}
    for ref in img.get("RepoTags") or []:
        name, tag = split_tag(ref)
        if tag and name != "<none>":
            repo_tags.setdefault(familiar_name(name), []).append(tag)
    for ref in img.get("RepoDigests") or []:
        name, digest = split_digest(ref)
        if digest and name != "<none>":
            repo_digests.setdefault(familiar_name(name), []).append(digest)
    rows = []
    for repo, tags in repo_tags.items():
        digests = repo_digests.pop(repo, []) if show_digests else []
        if not show_digests:
            repo_digests.pop(repo, None)
        for tag in tags:
            if not digests:
                rows.append(row(repo, tag, "<none>"))
            for dgst in digests:
                rows.append(row(repo, tag, dgst))
    for repo, digests in repo_digests.items():
        if show_digests:
            rows += [row(repo, "<none>", d) for d in digests]
        else:
            rows.append(row(repo, "<none>", ""))
    return rows


def images(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(IMAGES_SPEC, argv)
    filters = checked_filters(ctx, IMAGES_SPEC, opts["filter"])
    if args:
        filters.setdefault("reference", {})[args[0]] = True
    query: dict[str, Any] = {}
    if opts["all"]:
        query["all"] = "1"
    if filters:
        query["filters"] = json.dumps(filters, separators=(",", ":"))
    listing = ctx.client.call("GET", "/images/json", query=query) or []
    trunc = not opts["no_trunc"]
    fmt = opts["format"] or ""
    if opts["quiet"] and not fmt:
        seen: list[str] = []
        for img in listing:
            iid = ImageRow(img, "", "", "", trunc).ID
            if iid not in seen:
                seen.append(iid)
        ctx.out("".join(i + "\n" for i in seen))
        return 0
    if not fmt:
        fmt = DIGEST_TABLE if opts["digests"] else DEFAULT_TABLE
    show_digests = opts["digests"] or ".Digest" in fmt
    rows = [row for img in listing for row in image_rows(img, show_digests, trunc)]
    ctx.out(render(fmt, rows, HEADERS))
    return 0


def tag(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(TAG_SPEC, argv)
    source, target = args
    name, tag_ = split_tag(target)
    if "@" in target:
        from berth.errors import InvalidParameter

        raise InvalidParameter("refusing to create a tag with a digest reference")
    query = {"repo": normalize_name(name), "tag": tag_ or "latest"}
    ctx.client.call("POST", f"/images/{path_escape(source)}/tag", query=query)
    return 0


def rmi(ctx: Any, argv: list[str]) -> int:
    from berth.cli.main import report_error

    opts, args = ctx.parse(RMI_SPEC, argv)
    query = {"force": "1" if opts["force"] else None, "noprune": "1" if opts["no_prune"] else None}
    failed = False
    for name in args:
        try:
            items = ctx.client.call("DELETE", f"/images/{path_escape(name)}", query=query) or []
        except BerthError as exc:
            report_error(ctx, exc)
            failed = True
            continue
        for item in items:
            if item.get("Untagged"):
                ctx.out(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                ctx.out(f"Deleted: {item['Deleted']}\n")
    return 1 if failed else 0
