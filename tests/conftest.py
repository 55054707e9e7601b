"""Shared fixtures and the test tiers (docs/testing.md).

Tiers follow the directories: tests/unit -> `unit`, tests/root -> `root`, tests/integration ->
`integration` (the marker is added automatically; a test may also carry it explicitly).
`root` and `integration` tests skip, with the reason, when not run as root, and `integration` tests
also when the docker CLI is missing. Under CI (CI=true) those conditions fail instead of skipping,
so a machine that lost a prerequisite can never pass by skipping everything.

Fixtures:
    berthd_factory   make(**kw) -> harness.Berthd, started; all torn down after the test
                     (kw: storage_driver="overlay2"|"vfs", tcp_port=int|None, tls=TLSConfig|None,
                     extra_args=(...), start=True)
    berthd           one started berthd (overlay2)
    busybox_tar      a busybox root file system tar, built once per session
    busybox_image    imports busybox_tar into `berthd` as busybox:latest (CMD ["sh"]); returns the ref
    dockerd_factory  make(**kw) -> harness.Dockerd: the reference dockerd 20.10 (Debian's docker.io)
                     on private roots in its own network namespace, for `conformance` tests
    dockerd          one started reference dockerd
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# tests/ on sys.path whatever pytest's import mode, so tests and bench/ can `import harness`.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402

TIERS = ("unit", "root", "integration", "conformance")
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: pure logic, no root, no daemon")
    config.addinivalue_line(
        "markers", "root: needs root and real kernel features (namespaces, overlay, cgroups)"
    )
    config.addinivalue_line("markers", "integration: runs a real berthd and real containers")
    config.addinivalue_line("markers", "conformance: runs the same scenario against berthd and a reference")


def _missing_prerequisite(tier: str) -> str | None:
    if tier in ("root", "integration", "conformance") and os.geteuid() != 0:
        return f"{tier} tests need root (euid is {os.geteuid()})"
    if tier in ("integration", "conformance"):
        exe = harness.docker_cli()
        if exe is None:
            return "the docker CLI is not on PATH (integration tests drive berthd with it)"
        version = harness.docker_cli_version(exe)
        if version is None or version < (20, 10):
            return f"{exe} is version {version}; integration tests need docker CLI >= 20.10"
    if tier == "conformance" and harness.dockerd_path() is None:
        return "the reference dockerd is not installed (bash scripts/setup.sh --with-reference)"
    return None


_MISSING = pytest.StashKey[str]()
_DAEMONS = pytest.StashKey[list[harness.Daemon]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    reasons: dict[str, str | None] = {}
    for item in items:
        try:
            rel = Path(str(item.path)).relative_to(tests_dir)
        except ValueError:
            rel = None
        if rel is not None and rel.parts and rel.parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, rel.parts[0]))
        for tier in ("root", "integration", "conformance"):
            if item.get_closest_marker(tier) is None:
                continue
            if tier not in reasons:
                reasons[tier] = _missing_prerequisite(tier)
            reason = reasons[tier]
            if reason is not None:
                item.stash[_MISSING] = reason
                break


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = item.stash.get(_MISSING, None)
    if reason is not None:
        _fail_in_ci_else_skip(reason)


def _fail_in_ci_else_skip(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries the tail of each daemon's log (shown under the failure)."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for d in item.stash.get(_DAEMONS, []):
            report.sections.append((f"{d.name}d log ({d.root})", d.log_tail(80)))
    return report


def _track(request: pytest.FixtureRequest, d: harness.Daemon) -> None:
    request.node.stash.setdefault(_DAEMONS, []).append(d)


@pytest.fixture
def berthd_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., harness.Berthd]]:
    made: list[harness.Berthd] = []

    def make(start: bool = True, **kwargs: Any) -> harness.Berthd:
        d = harness.Berthd.create(**kwargs)
        made.append(d)
        _track(request, d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in reversed(made):
        for problem in d.teardown():
            problems.append(f"berthd on {d.root}: {problem}")
    if problems:
        pytest.fail("teardown found leaks:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def berthd(berthd_factory: Callable[..., harness.Berthd]) -> harness.Berthd:
    return berthd_factory()


@pytest.fixture
def dockerd_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., harness.Dockerd]]:
    """make(start=True, extra_args=()) -> the reference dockerd (conformance tests)."""
    made: list[harness.Dockerd] = []

    def make(start: bool = True, **kwargs: Any) -> harness.Dockerd:
        exe = harness.dockerd_path()
        if exe is None:
            _fail_in_ci_else_skip(
                "the reference dockerd is not installed (bash scripts/setup.sh --with-reference)"
            )
        d = harness.Dockerd.create(executable=exe, **kwargs)
        made.append(d)
        _track(request, d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in reversed(made):
        problems += [f"dockerd on {d.root}: {p}" for p in d.teardown()]
    if problems:
        pytest.fail("teardown found leaks:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def dockerd(dockerd_factory: Callable[..., harness.Dockerd]) -> harness.Dockerd:
    """One started reference dockerd 20.10, in its own network namespace."""
    return dockerd_factory()


@pytest.fixture(scope="session")
def busybox_tar() -> Iterator[Path]:
    if not harness.BUSYBOX.exists():
        _fail_in_ci_else_skip(f"{harness.BUSYBOX} not found (bash scripts/setup.sh installs busybox-static)")
    if not harness.is_static_elf(harness.BUSYBOX):
        _fail_in_ci_else_skip(f"{harness.BUSYBOX} is not statically linked (install busybox-static)")
    tmp = Path(tempfile.mkdtemp(prefix="bh-img-", dir="/tmp"))
    try:
        yield harness.build_busybox_tar(tmp / "busybox.tar")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def busybox_image(berthd: harness.Berthd, busybox_tar: Path) -> str:
    berthd.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    return "busybox:latest"
