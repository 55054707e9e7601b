"""The one small set of error classes every box raises (moby's errdefs, in Python).

Domain code raises these and never mentions HTTP; ``berth.api.errors`` maps each class to
a status code in one table, and ``berth.client`` maps a status back to the class.

    >>> raise NotFound("No such container: web")

Messages follow Docker's text where the CLI or users key on it (``No such image: x``),
otherwise crun's habit: the operation, the object and the cause, lower case, no period.
"""

from __future__ import annotations


class BerthError(Exception):
    """Base class: ``str(err)`` is the message the user sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(BerthError):
    """The object named does not exist (404)."""


class Conflict(BerthError):
    """The request conflicts with the object's state or name (409)."""


class InvalidParameter(BerthError):
    """The request is malformed or names something unusable (400)."""


class Unauthorized(BerthError):
    """Credentials are missing or wrong (401)."""


class Forbidden(BerthError):
    """The operation is not allowed (403)."""


class NotModified(BerthError):
    """Nothing to do: already in the asked-for state (304)."""


class Unimplemented(BerthError):
    """berth does not implement this (501)."""


class Unavailable(BerthError):
    """A needed service is not available right now (503)."""


class SystemFailure(BerthError):
    """Something failed inside berth or the kernel (500)."""


class ContainerStartError(InvalidParameter):
    """The container's process could not be started (bad binary, bad workdir...).

    Docker answers 400 on ``start`` with the runtime's text; the CLI turns text that
    mentions ``no such file or directory``/``executable file not found`` into exit 127 and
    ``permission denied``/``not executable`` into 126. ``exit_code`` is what the container
    records (127, 126 or 128).
    """

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.exit_code = exit_code
