"""Build arguments' scopes and the build cache with its miss reasons (berth.builder.buildargs, .cache)."""

from __future__ import annotations

from pathlib import Path

from berth.builder.buildargs import BuildArgs
from berth.builder.cache import BuildCache, Detail, cache_key


def test_meta_args_stage_scope_and_proxies() -> None:
    args = BuildArgs({"BASE": "alpine", "X": "42", "HTTP_PROXY": "hp", "UNUSED": "1", "UNSET": None})
    args.declare_meta("BASE", "busybox")
    args.declare_meta("M", "m")
    assert args.meta_env() == {"HTTP_PROXY": "hp", "BASE": "alpine", "M": "m"}
    stage = args.stage()
    assert stage.values() == {"HTTP_PROXY": "hp"}  # meta args are not visible without ARG
    stage.declare("M", None)        # takes the meta value
    stage.declare("X", "default")   # --build-arg wins
    stage.declare("Y", None)        # declared, no value: unset
    assert stage.values() == {"HTTP_PROXY": "hp", "M": "m", "X": "42"}
    assert stage.visible({"X": "from ENV"}) == {"HTTP_PROXY": "hp", "M": "m"}
    # undeclared proxies are visible to RUN but not part of its cache key
    assert stage.keyed({}) == {"M": "m", "X": "42"}
    assert args.unused() == ["UNSET", "UNUSED"]
    assert args.stage().values() == {"HTTP_PROXY": "hp"}  # every stage starts afresh


def test_cache_hits_and_reasons(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "berth.db")
    try:
        probe = {"Cmd": ["|1", "X=1", "/bin/sh", "-c", "make"], "Env": ["PATH=/bin"]}
        key = cache_key("sha256:parent", probe)
        assert key == cache_key("sha256:parent", dict(reversed(list(probe.items()))))
        assert key != cache_key("sha256:other", probe)
        assert cache.get(key) is None
        run = Detail("RUN", "/bin/sh -c make", {"X": "1"}, identity="RUN make")
        cache.put(key, "sha256:parent", "sha256:img1", run)
        assert cache.get(key) == "sha256:img1"
        changed = Detail("RUN", "/bin/sh -c make", {"X": "2"}, identity="RUN make")
        assert cache.why_missed("sha256:parent", changed) == "build argument X changed ('1' -> '2')"
        assert cache.why_missed("sha256:other", run).startswith("the image it builds on changed")
        assert cache.why_missed("sha256:new", Detail("RUN", "/bin/sh -c other")) == "no earlier build of this step"
        copy1 = Detail("COPY", "COPY src /app", {}, {"src/a": "file:644::aaa", "src/b": "file:644::bbb"},
                       identity="COPY src /app")
        cache.put(cache_key("p2", {"Cmd": ["c1"]}), "p2", "sha256:img2", copy1)
        for files, reason in (
            ({"src/a": "file:644::aaa", "src/b": "file:644::ccc"}, "file src/b changed (content)"),
            ({"src/a": "file:755::aaa", "src/b": "file:644::bbb"}, "file src/a changed (mode 644 -> 755)"),
            ({"src/a": "file:644::aaa"}, "file src/b was removed"),
            ({"src/a": "file:644::aaa", "src/b": "file:644::bbb", "src/c": "file:644::c"}, "file src/c was added"),
        ):
            assert cache.why_missed("p2", Detail("COPY", "COPY src /app", {}, files, identity="COPY src /app")) == reason
        assert "was removed" in cache.why_missed("p2", copy1, exists=lambda image: False)
        assert cache.count() == 2 and len(cache.keys()) == 2
        assert cache.forget_images({"sha256:img1"}) == 1 and cache.count() == 1
    finally:
        cache.close()
    reopened = BuildCache(tmp_path / "berth.db")  # rows survive a restart
    try:
        assert reopened.get(key) == "sha256:img1"
    finally:
        reopened.close()
