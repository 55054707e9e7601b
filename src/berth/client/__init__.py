"""The Docker Engine API client (the seed's "Docker Client", its transport half).

Model: ``transport`` turns ``-H`` into an ``Endpoint`` (``unix://``, ``tcp://`` with TLS,
``fd://``) and opens sockets; ``http`` speaks HTTP/1.1 over one socket (keep-alive,
Content-Length and chunked bodies both ways, streamed responses, the ``101`` hijack); ``api``
negotiates the version (``HEAD /_ping``) and maps replies >= 400 to ``berth.errors`` classes
(``status``); ``stdcopy`` and ``jsonstream`` decode the multiplexed and JSON-progress streams.
``fake`` is a scripted daemon on a unix socket for tests. Nothing here imports the daemon side.

    from berth.client.api import Client
    from berth.client.transport import parse_host

    client = Client(parse_host("unix:///run/berth/berth.sock"))
    client.call("GET", "/containers/json", query={"all": "1"})   # -> [{...}, ...]

Kept import-light on purpose: ``berth ps`` has a 60 ms budget, so this package imports no
asyncio, no http.client, and ``ssl`` only for TLS endpoints.
"""
