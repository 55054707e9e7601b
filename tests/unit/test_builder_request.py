"""``POST /build``'s query as a BuildRequest (berth.api.routes.build) and the build stream (berth.builder.output)."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import make_mocked_request

from berth.api.routes.build import build_request
from berth.builder.output import Output
from berth.errors import InvalidParameter, Unimplemented


def request(query: dict[str, object], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    pairs = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return make_mocked_request("POST", "/build?" + urlencode(pairs), headers=headers or {})


def test_query_to_request() -> None:
    auth = base64.b64encode(json.dumps({"reg:5000": {"username": "u", "password": "p"}}).encode()).decode()
    req = build_request(request({
        "t": ["a:1", "b"], "dockerfile": "sub/Dockerfile", "buildargs": '{"X":"1","Y":null}',
        "labels": '{"k":"v"}', "target": "t", "nocache": "1", "q": "true", "forcerm": "1",
        "networkmode": "host", "extrahosts": "h1:1.2.3.4,h2:5.6.7.8", "memory": "1048576", "version": "1",
    }, {"X-Registry-Config": auth}))
    assert req.tags == ("a:1", "b") and req.dockerfile == "sub/Dockerfile"
    assert req.args == {"X": "1", "Y": None} and req.labels == (("k", "v"),)
    assert (req.target, req.no_cache, req.quiet, req.force_rm, req.rm) == ("t", True, True, True, True)
    assert req.network_mode == "host" and req.extra_hosts == ("h1:1.2.3.4", "h2:5.6.7.8")
    assert req.memory == 1048576 and req.registry_auth == {"reg:5000": {"username": "u", "password": "p"}}
    assert build_request(request({"rm": "0"})).rm is False
    assert build_request(request({})).network_mode == "default"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"t": "Bad:Tag:x"}, InvalidParameter),
        ({"buildargs": "[1]"}, InvalidParameter),
        ({"buildargs": '{"X": 1}'}, InvalidParameter),
        ({"labels": "{bad json"}, InvalidParameter),
        ({"version": "2"}, InvalidParameter),
        ({"remote": "https://example.invalid/ctx.git"}, Unimplemented),
        ({"memory": "lots"}, InvalidParameter),
    ],
)
def test_bad_queries(query: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        build_request(request(query))


class Sink:
    def __init__(self) -> None:
        self.data = b""

    async def write(self, data: bytes) -> None:
        self.data += data


def test_output_encoding_and_quiet_mode() -> None:
    async def scenario() -> tuple[bytes, bytes, bytes]:
        loud, quiet, failed = Sink(), Sink(), Sink()
        out = Output(loud)
        await out.stream("Step 1/2 : RUN a > b && c\n")
        await out.process(2, b"err\xc3")  # a split UTF-8 character waits for its rest
        await out.process(2, b"\xa9\n")
        await out.aux({"ID": "sha256:x"})
        q = Output(quiet, quiet=True)
        await q.stream("hidden\n")
        await q.aux({"ID": "sha256:x"})
        await q.done_quiet("sha256:x")
        f = Output(failed, quiet=True)
        await f.stream("shown on failure\n")
        await f.error("boom", 3)
        return loud.data, quiet.data, failed.data

    loud, quiet, failed = asyncio.run(scenario())
    assert loud.split(b"\r\n")[:4] == [
        b'{"stream":"Step 1/2 : RUN a \\u003e b \\u0026\\u0026 c\\n"}',
        b'{"stream":"\\u001b[91merr\\u001b[0m"}',
        '{"stream":"\\u001b[91m\u00e9\\n\\u001b[0m"}'.encode(),
        b'{"aux":{"ID":"sha256:x"}}',
    ]
    assert quiet == b'{"stream":"sha256:x\\n"}\r\n'
    assert failed == (b'{"stream":"shown on failure\\n"}\r\n'
                      b'{"errorDetail":{"code":3,"message":"boom"},"error":"boom"}\r\n')
