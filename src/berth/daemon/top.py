"""``docker top``: the host's ``ps`` with the caller's options, cut to the container's processes.

As dockerd does: ``ps`` runs on the host with ``ps_args`` split on spaces (``-ef`` when none),
the header's ``PID`` column finds the rows whose process is one of the container's (with ``m``,
the thread lines that follow one of them are kept too), and a row's surplus fields are joined
into the last column (the command). An argument naming ``PID`` in a custom column other than
``pid=`` is refused, as is output without a ``PID`` column.

    >>> parse_ps(b"UID PID CMD\\nroot 7 sleep 300\\nroot 8 other\\n", {7})
    {'Titles': ['UID', 'PID', 'CMD'], 'Processes': [['root', '7', 'sleep 300']]}
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from berth.errors import SystemFailure

_CUSTOM_PID = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def check_args(ps_args: str) -> None:
    for key, value in _CUSTOM_PID.findall(ps_args):
        if key != "pid":
            raise SystemFailure(f'specifying "{key}={value}" is not allowed')  # dockerd: a 500


def parse_ps(output: bytes, pids: set[int]) -> dict[str, Any]:
    lines = output.decode("utf-8", "replace").split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise SystemFailure("Couldn't find PID field in ps output")
    at = titles.index("PID")
    rows: list[list[str]] = []
    previous_kept = False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) <= at:
            continue
        if fields[at] == "-":  # a thread line (ps m): kept with its process
            if previous_kept:
                rows.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[at])
        except ValueError as exc:
            raise SystemFailure(f"Unexpected pid '{fields[at]}': {exc}") from exc
        previous_kept = pid in pids
        if previous_kept:
            rows.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": rows}


def _row(fields: list[str], columns: int) -> list[str]:
    return [*fields[: columns - 1], " ".join(fields[columns - 1 :])]


async def run_ps(ps_args: str, pids: set[int]) -> dict[str, Any]:
    check_args(ps_args)
    args = (ps_args or "-ef").split(" ")
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        first = err.decode(errors="replace").split("\n", 1)[0]  # dockerd: the first line of stderr
        raise SystemFailure(f"ps: {first or f'exit status {proc.returncode}'}")
    return await asyncio.to_thread(parse_ps, out, pids)
