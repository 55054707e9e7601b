"""The runtime command line's one failure type."""

from __future__ import annotations


class CommandError(Exception):
    """A command-line level failure: printed as ``berth-runtime: <message>``, exit status 1."""
