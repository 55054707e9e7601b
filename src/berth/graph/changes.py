"""``--change`` instructions (``docker import -c``, ``docker commit -c``) applied to a config.

The model is Docker's ``BuildFromConfig``: each change is one Dockerfile line; only CMD,
ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME and WORKDIR are allowed,
anything else is ``InvalidParameter("<instruction> is not a valid change command")``. Words
are processed like the Dockerfile shell lexer (quotes, backslashes, ``$VAR``/``${VAR}``
expanded from the config's own Env). A pure function, no side effects::

    >>> apply_changes({}, ['CMD ["sh"]', "ENV A=1 B='two words'", "EXPOSE 80"])["ExposedPorts"]
    {'80/tcp': {}}
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from berth.errors import InvalidParameter

VALID = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "user", "volume", "workdir")
_INSTRUCTION_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+(.*))?$", re.DOTALL)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of the container ``config`` with the ``changes`` applied in order."""
    lines = _split_lines(changes)
    parsed: list[tuple[str, str]] = []
    for line in lines:
        match = _INSTRUCTION_RE.match(line)
        if match is None:
            raise InvalidParameter(f"parse change {line!r}: not a Dockerfile instruction")
        instruction, rest = match.group(1).lower(), (match.group(2) or "").strip()
        if instruction not in VALID:
            raise InvalidParameter(f"{instruction} is not a valid change command")
        parsed.append((instruction, rest))
    state = _State(json.loads(json.dumps(config)))
    for instruction, rest in parsed:
        getattr(state, instruction)(rest)
    return state.config


def _split_lines(changes: list[str]) -> list[str]:
    """Join backslash continuations and drop blank lines and comments, as the parser does."""
    lines: list[str] = []
    pending = ""
    for raw in "\n".join(changes).split("\n"):
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        lines.append(pending + raw)
        pending = ""
    if pending.strip():
        lines.append(pending)
    return lines


def split_words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (Docker's ``parseWords``)."""
    words: list[str] = []
    word = ""
    quote = ""
    escaped = False
    for char in text:
        if escaped:
            word += char
            escaped = False
        elif char == "\\" and quote != "'":
            word += char
            escaped = True
        elif quote:
            word += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            word += char
            quote = char
        elif char.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += char
    if word:
        words.append(word)
    return words


def process_word(word: str, env: dict[str, str]) -> str:
    """Remove quotes and escapes and expand variables (Docker's shell lexer, the common cases)."""
    out: list[str] = []
    i = 0
    quote = ""
    while i < len(word):
        char = word[i]
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                out.append(char)
            i += 1
        elif char == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        elif char in "'\"" and (not quote or quote == char):
            quote = "" if quote else char
            i += 1
        elif char == "$":
            value, i = _expand(word, i + 1, env)
            out.append(value)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _expand(word: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    if i < len(word) and word[i] == "{":
        end = word.find("}", i)
        if end < 0:
            raise InvalidParameter(f"parse change: missing '}}' in {word!r}")
        body = word[i + 1 : end]
        for op in (":-", ":+", "-", "+"):
            name, sep, alt = body.partition(op)
            if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                value = env.get(name)
                is_set = bool(value) if op.startswith(":") else value is not None
                if op.endswith("-"):
                    return (value if is_set and value is not None else alt), end + 1
                return (alt if is_set else ""), end + 1
        return env.get(body, ""), end + 1
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word[i:])
    if match is None:
        return "$", i
    return env.get(match.group(0), ""), i + match.end()


def _json_or_shell(rest: str) -> tuple[list[str], bool]:
    """(args, is_json): the JSON array form, or the shell form wrapped in ``/bin/sh -c``."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except (ValueError, RecursionError):  # not a JSON array: Docker takes it as shell form
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value, True
    return ["/bin/sh", "-c", rest], False


class _State:
    """Dispatches one instruction at a time onto a config dict (Docker's dispatchers)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.cmd_set = False

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in self.config.get("Env") or []:
            key, _, value = entry.partition("=")
            env[key] = value
        return env

    def _name_values(self, instruction: str, rest: str) -> list[tuple[str, str]]:
        words = split_words(rest)
        if not words:
            raise InvalidParameter(f"{instruction} requires at least one argument")
        if "=" not in words[0]:
            # legacy form: NAME value with spaces
            parts = rest.split(None, 1)
            if len(parts) < 2:
                raise InvalidParameter(f"{instruction} must have two arguments")
            return [(parts[0], process_word(parts[1].strip(), self._env()))]
        pairs: list[tuple[str, str]] = []
        for word in words:
            if "=" not in word:
                raise InvalidParameter(
                    f"Syntax error - can't find = in {word!r}. Must be of the form: name=value"
                )
            key, _, value = word.partition("=")
            key = process_word(key, self._env())
            if not key:
                raise InvalidParameter(f"{instruction} names can not be blank")
            pairs.append((key, process_word(value, self._env())))
        return pairs

    def cmd(self, rest: str) -> None:
        self.config["Cmd"], _ = _json_or_shell(rest)
        self.cmd_set = True

    def entrypoint(self, rest: str) -> None:
        args, is_json = _json_or_shell(rest)
        self.config["Entrypoint"] = args if (is_json or rest) else None
        if not self.cmd_set:
            self.config["Cmd"] = None  # Docker: a new ENTRYPOINT resets an inherited CMD

    def env(self, rest: str) -> None:
        for key, value in self._name_values("ENV", rest):
            entries = list(self.config.get("Env") or [])
            for index, entry in enumerate(entries):
                if entry.partition("=")[0] == key:
                    entries[index] = f"{key}={value}"
                    break
            else:
                entries.append(f"{key}={value}")
            self.config["Env"] = entries

    def label(self, rest: str) -> None:
        labels = dict(self.config.get("Labels") or {})
        for key, value in self._name_values("LABEL", rest):
            labels[key] = value
        self.config["Labels"] = labels

    def expose(self, rest: str) -> None:
        words = [process_word(w, self._env()) for w in split_words(rest)]
        if not words:
            raise InvalidParameter("EXPOSE requires at least one argument")
        ports = dict(self.config.get("ExposedPorts") or {})
        for word in words:
            for port in expand_port(word):
                ports[port] = {}
        self.config["ExposedPorts"] = ports

    def volume(self, rest: str) -> None:
        args, is_json = _json_or_shell(rest)
        words = args if is_json else [process_word(w, self._env()) for w in split_words(rest)]
        if not words:
            raise InvalidParameter("VOLUME requires at least one argument")
        volumes = dict(self.config.get("Volumes") or {})
        for word in words:
            if not word.strip():
                raise InvalidParameter("VOLUME specified can not be an empty string")
            volumes[word.strip()] = {}
        self.config["Volumes"] = volumes

    def user(self, rest: str) -> None:
        words = split_words(rest)
        if len(words) != 1:
            raise InvalidParameter("USER requires exactly one argument")
        self.config["User"] = process_word(words[0], self._env())

    def workdir(self, rest: str) -> None:
        words = split_words(rest)
        if len(words) != 1:
            raise InvalidParameter("WORKDIR requires exactly one argument")
        path = process_word(words[0], self._env())
        if not path.startswith("/"):
            path = posixpath.join(self.config.get("WorkingDir") or "/", path)
        self.config["WorkingDir"] = posixpath.normpath(path).replace("//", "/")

    def onbuild(self, rest: str) -> None:
        trigger = rest.split(None, 1)[0].upper() if rest.strip() else ""
        if not trigger:
            raise InvalidParameter("ONBUILD requires at least one argument")
        if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
        self.config["OnBuild"] = list(self.config.get("OnBuild") or []) + [rest.strip()]

    def healthcheck(self, rest: str) -> None:
        words = rest.split()
        flags: dict[str, str] = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        if not words:
            raise InvalidParameter("HEALTHCHECK requires an argument")
        kind = words[0].upper()
        if kind == "NONE":
            if len(words) > 1 or flags:
                raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
            self.config["Healthcheck"] = {"Test": ["NONE"]}
            return
        if kind != "CMD":
            raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        command = rest.split("CMD", 1)[1].strip() if "CMD" in rest else rest.split(None, 1)[1]
        args, is_json = _json_or_shell(command)
        test = ["CMD", *args] if is_json else ["CMD-SHELL", command]
        check: dict[str, Any] = {"Test": test}
        for flag, key in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start-period", "StartPeriod"),
            ("start-interval", "StartInterval"),
        ):
            if flag in flags:
                check[key] = parse_duration(flags[flag])
        if "retries" in flags:
            try:
                check["Retries"] = int(flags["retries"])
            except ValueError as exc:
                raise InvalidParameter(f"HEALTHCHECK --retries {flags['retries']!r}: not a number") from exc
        unknown = set(flags) - {"interval", "timeout", "start-period", "start-interval", "retries"}
        if unknown:
            raise InvalidParameter(f"Unknown flag: {sorted(unknown)[0]}")
        self.config["Healthcheck"] = check


def expand_port(spec: str) -> list[str]:
    """``80`` -> ``["80/tcp"]``; ``8000-8001/udp`` -> two entries; bad input -> InvalidParameter."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    low, _, high = port.partition("-")
    try:
        start, end = int(low), int(high or low)
    except ValueError as exc:
        raise InvalidParameter(f"invalid containerPort: {port}") from exc
    if not (0 < start <= end <= 65535):
        raise InvalidParameter(f"invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    position = 0
    total = 0
    for match in _DURATION_RE.finditer(text):
        if match.start() != position:
            break
        total += int(float(match.group(1)) * _DURATION_NS[match.group(2)])
        position = match.end()
    if position != len(text) or not text:
        raise InvalidParameter(f'time: invalid duration "{text}"')
    return total
