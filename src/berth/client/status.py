"""HTTP status of a daemon reply -> the berth.errors class, like moby's client errdefs.

The daemon's message is the JSON ``message`` when the reply says exactly
``Content-Type: application/json`` (as the docker CLI requires), else the raw body text.
Every error built here carries ``http_status`` so the CLI can print
``Error response from daemon: <message>`` only for errors that came from the daemon.

    >>> err = error_for(404, "application/json", b'{"message":"No such container: web"}', "/v1.44/x")
    >>> type(err).__name__, err.message, err.http_status
    ('NotFound', 'No such container: web', 404)
"""

from __future__ import annotations

from berth import errors

STATUS_CLASSES: dict[int, type[errors.BerthError]] = {
    304: errors.NotModified,
    400: errors.InvalidParameter,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    500: errors.SystemFailure,
    501: errors.Unimplemented,
    503: errors.Unavailable,
}


def class_for(status: int) -> type[errors.BerthError]:
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if 400 <= status < 500:
        return errors.InvalidParameter
    return errors.SystemFailure


def message_for(status: int, content_type: str, body: bytes, route: str) -> str:
    text = body.decode("utf-8", "replace")
    if content_type == "application/json" and text.strip():
        import json

        try:
            doc = json.loads(text)
        except ValueError:
            return text.strip()
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return str(doc["message"])
        return text.strip()
    if text.strip():
        return text.strip()
    return (
        f"request returned {status} for API route and version {route}, "
        "check if the server supports the requested API version"
    )


def error_for(status: int, content_type: str, body: bytes, route: str) -> errors.BerthError:
    err = class_for(status)(message_for(status, content_type, body, route))
    err.http_status = status  # type: ignore[attr-defined]
    return err


def from_daemon(err: BaseException) -> bool:
    """True when the error is a daemon reply (print it with the daemon prefix)."""
    return getattr(err, "http_status", None) is not None
