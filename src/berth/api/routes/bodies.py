"""Request bodies that must be there: dockerd decodes them with ``json.NewDecoder`` and answers
an empty body with 400 ``got EOF while reading request body`` (volume and network create);
``null`` decodes to the zero value, i.e. ``{}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api.streams import bounded_body, json_request
from berth.errors import InvalidParameter

EOF_MESSAGE = "got EOF while reading request body"


async def required_json(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body; 400 when the body is empty or only white space."""
    raw = await bounded_body(request)  # kept: json_request reads the same bytes
    if not raw.strip():
        raise InvalidParameter(EOF_MESSAGE)
    return await json_request(request)
