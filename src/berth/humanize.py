"""Docker's human-readable durations (go-units ``HumanDuration``), shared by both sides.

The daemon uses it for ``ps``'s Status column (``Up 2 seconds``), the client for
``CREATED`` (``3 minutes ago``). Dependency-free, so the CLI's start-up stays small.

    >>> human_duration(90)
    'About a minute'
"""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
