"""What every command gets: the streams, the environment, the global flags, a lazy client.

Model: ``Context`` is built once per invocation by ``berth.cli.main``; commands call
``ctx.parse(spec, argv)`` (usage errors print docker's text and end the command with 125,
``--help`` prints the usage and ends it with 0) and ``ctx.client`` (created on first use, so
``--help`` and flag errors never touch the daemon).
"""

from __future__ import annotations

from berth.cli.options import Command, parse
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


class Context:
    def __init__(
        self,
        global_opts: dict[str, Any],
        env: dict[str, str],
        stdin: Any,
        stdout: TextIO,
        stderr: TextIO,
        command_path: str = "",
    ) -> None:
        self.opts = global_opts
        self.env = env
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.command_path = command_path
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from berth.client.api import Client
            from berth.client.transport import DEFAULT_HOST, parse_host, tls_options

            opts = self.opts
            tls = tls_options(
                self.env,
                tls=opts.get("tls", False),
                tlsverify=opts.get("tlsverify", False),
                cacert=opts.get("tlscacert"),
                cert=opts.get("tlscert"),
                key=opts.get("tlskey"),
            )
            hosts = opts.get("host") or []
            host = hosts[-1] if hosts else (self.env.get("BERTH_HOST") or DEFAULT_HOST)
            self._client = Client(
                parse_host(host, tls), api_version=self.env.get("BERTH_API_VERSION") or None
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def parse(self, spec: Command, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        try:
            values, args = parse(spec, argv)
        except InvalidParameter as exc:
            self.usage_error(spec, exc.message)
        if values["help"]:
            self.stdout.write(spec.help_text())
            raise SystemExit(0)
        return values, args

    def usage_error(self, spec: Command, message: str) -> None:
        self.stderr.write(f"{message}\nSee 'berth {spec.name} --help'.\n")
        raise SystemExit(125)

    # -- output helpers ---------------------------------------------------------------------

    def out(self, text: str) -> None:
        self.stdout.write(text)

    def err(self, text: str) -> None:
        self.stderr.write(text)

    def write_bytes(self, data: bytes, stream: int = 1) -> None:
        """Container output: raw bytes to stdout (1) or stderr (2), unbuffered."""
        target = self.stdout if stream == 1 else self.stderr
        target.flush()
        buf = getattr(target, "buffer", None)
        if buf is not None:
            buf.write(data)
            buf.flush()
        else:
            target.write(data.decode("utf-8", "replace"))
            target.flush()
