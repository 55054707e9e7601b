"""``berth login``, ``logout``, ``push`` and ``search``: the registry commands besides pull.

They behave as the docker CLI's: credentials live in ``$DOCKER_CONFIG/config.json`` (or a
credential helper; see ``berth.cli.credentials``) and travel to the daemon in ``X-Registry-Auth``.
"""

from __future__ import annotations

import sys

from berth.cli import credentials
from berth.cli.options import Command, Flag
from berth.cli.progress import display_stream
from berth.cli.reference import normalize_name, split_digest, split_tag
from berth.cli.terminal import fd_of, is_tty
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOGIN = Command(
    "login",
    "berth login [OPTIONS] [SERVER]",
    "Authenticate to a registry",
    (
        Flag(("-u", "--username"), "value", "Username"),
        Flag(("-p", "--password"), "value", "Password or Personal Access Token (PAT)"),
        Flag(("--password-stdin",), help="Take the Password or Personal Access Token (PAT) from stdin"),
    ),
    max_args=1,
)
LOGOUT = Command("logout", "berth logout [SERVER]", "Log out from a registry", (), max_args=1)
PUSH = Command(
    "push",
    "berth push [OPTIONS] NAME[:TAG]",
    "Upload an image to a registry",
    (
        Flag(("-a", "--all-tags"), help="Push all tags of an image to the repository"),
        Flag(("-q", "--quiet"), help="Suppress verbose output"),
    ),
    min_args=1,
    max_args=1,
)
SEARCH = Command(
    "search",
    "berth search [OPTIONS] TERM",
    "Search for images in a registry",
    (
        Flag(("-f", "--filter"), "list", "Filter output based on conditions provided"),
        Flag(("--format",), "value", "Pretty-print search using a Go template"),
        Flag(("--limit",), "int", "Max number of search results", default=0),
        Flag(("--no-trunc",), help="Don't truncate output"),
    ),
    min_args=1,
    max_args=1,
)


def login(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(LOGIN, argv)
    server = args[0] if args else credentials.HUB_KEY
    user, password = opts["username"] or "", opts["password"] or ""
    if opts["password_stdin"]:
        if password:
            raise InvalidParameter("--password and --password-stdin are mutually exclusive")
        if not user:
            raise InvalidParameter("Must provide --username with --password-stdin")
        password = ctx.stdin.read().rstrip("\r\n")
    elif password:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if not user or not password:
        raise InvalidParameter("Error: Cannot perform an interactive login from a non TTY device"
                               if not sys.stdin.isatty() else "Error: username and password are required")
    key = credentials.server_key(server)
    answer = ctx.client.call("POST", "/auth", json_body={"username": user, "password": password, "serveraddress": key})
    saved = credentials.store(credentials.config_dir(ctx.env), server, user, password)
    if saved is not None:
        ctx.err(f"WARNING! Your credentials are stored unencrypted in '{saved}'.\n"
                "Configure a credential helper to remove this warning.\n\n")
    ctx.out(f"{(answer or {}).get('Status') or 'Login Succeeded'}\n")
    return 0


def logout(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(LOGOUT, argv)
    key = credentials.server_key(args[0] if args else "")
    if credentials.erase(credentials.config_dir(ctx.env), key):
        ctx.out(f"Removing login credentials for {'https://index.docker.io/v1/' if key == credentials.HUB_KEY else key}\n")
    else:
        ctx.out(f"Not logged in to {key}\n")
    return 0


def push(ctx: Any, argv: list[str]) -> int:
    opts, (ref,) = ctx.parse(PUSH, argv)
    name, digest = split_digest(ref)
    if digest:
        raise InvalidParameter(f"invalid reference: push by digest is not supported: {ref}")
    name, tag = split_tag(name)
    if not tag and not opts["all_tags"]:
        tag = "latest"
        ctx.out("Using default tag: latest\n")
    auth = credentials.auth_header_for(ctx.env, name)
    resp = ctx.client.open("POST", f"/images/{normalize_name(name)}/push", query={"tag": tag or None},
                           headers={"X-Registry-Auth": auth})
    display_stream(resp, (lambda text: None) if opts["quiet"] else ctx.out, tty=is_tty(fd_of(ctx.stdout)))
    if opts["quiet"]:
        ctx.out(f"{ref}\n")
    return 0


def search(ctx: Any, argv: list[str]) -> int:
    opts, (term,) = ctx.parse(SEARCH, argv)
    filters: dict[str, list[str]] = {}
    for item in opts["filter"] or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidParameter(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    query: dict[str, Any] = {"term": term, "limit": opts["limit"] or None}
    if filters:
        import json

        query["filters"] = json.dumps({k: {v: True for v in vs} for k, vs in filters.items()})
    auth = credentials.auth_header_for(ctx.env, term)
    results = ctx.client.call("GET", "/images/search", query=query, headers={"X-Registry-Auth": auth}) or []
    if opts["format"]:
        from berth.cli.template import Template

        template = Template(opts["format"])
        for r in results:
            row = {"Name": r.get("name", ""), "Description": r.get("description", ""),
                   "StarCount": r.get("star_count", 0), "IsOfficial": "[OK]" if r.get("is_official") else "",
                   "IsAutomated": "[OK]" if r.get("is_automated") else ""}
            ctx.out(template.render(row) + "\n")
        return 0
    from berth.cli.tabwriter import tabwrite

    rows = ["NAME\tDESCRIPTION\tSTARS\tOFFICIAL"]
    for r in results:
        desc = str(r.get("description") or "").replace("\n", " ")
        if not opts["no_trunc"] and len(desc) > 45:
            desc = desc[:44] + "…"
        rows.append(f"{r.get('name', '')}\t{desc}\t{r.get('star_count', 0)}\t{'[OK]' if r.get('is_official') else ''}")
    ctx.out(tabwrite("\n".join(rows) + "\n"))
    return 0
