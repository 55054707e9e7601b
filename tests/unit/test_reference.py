"""Docker reference parsing and normalisation (berth.graph.reference)."""

from __future__ import annotations

import pytest

from berth.errors import InvalidParameter
from berth.graph import reference
from berth.graph.reference import Reference, parse, parse_repository, parse_tagged

HEX = "5e38fda097eb46899e11a177271e784a79d58c45ba357e556be61f7ad42cc9c0"


@pytest.mark.parametrize(
    ("text", "name", "tag", "digest", "familiar"),
    [
        ("busybox", "docker.io/library/busybox", "", "", "busybox"),
        ("busybox:latest", "docker.io/library/busybox", "latest", "", "busybox:latest"),
        ("docker.io/busybox:1.36", "docker.io/library/busybox", "1.36", "", "busybox:1.36"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox", "", "", "busybox"),
        ("myrepo/bb:v1", "docker.io/myrepo/bb", "v1", "", "myrepo/bb:v1"),
        ("docker.io/myrepo/bb", "docker.io/myrepo/bb", "", "", "myrepo/bb"),
        ("127.0.0.1:5000/bbx:v1", "127.0.0.1:5000/bbx", "v1", "", "127.0.0.1:5000/bbx:v1"),
        ("localhost/app", "localhost/app", "", "", "localhost/app"),
        (
            "localhost:5000/a/b/c:t_1.2-x",
            "localhost:5000/a/b/c",
            "t_1.2-x",
            "",
            "localhost:5000/a/b/c:t_1.2-x",
        ),
        ("quay.io/org/app", "quay.io/org/app", "", "", "quay.io/org/app"),
        (f"busybox@sha256:{HEX}", "docker.io/library/busybox", "", f"sha256:{HEX}", f"busybox@sha256:{HEX}"),
        ("a__b-c/d.e", "docker.io/a__b-c/d.e", "", "", "a__b-c/d.e"),
        ("UPPER/x", "UPPER/x", "", "", "UPPER/x"),
    ],
)
def test_parse_normalises_and_prints_familiar(
    text: str, name: str, tag: str, digest: str, familiar: str
) -> None:
    ref = parse(text)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)
    assert ref.familiar() == familiar


def test_docker_library_prefix_only_for_single_component() -> None:
    assert parse("library/busybox").familiar_name() == "busybox"
    assert parse("docker.io/library/a/b").familiar_name() == "library/a/b"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Busybox",
        "busybox:",
        ":tag",
        "a//b",
        "-a",
        "a-",
        "busybox@sha256:abc",
        "bb:" + "x" * 129,
        "a/" * 130 + "b",
        "busybox:tag@",
        "a b",
    ],
)
def test_invalid_references_use_dockers_text(text: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        parse(text)


def test_uppercase_names_say_must_be_lowercase() -> None:
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        parse("Busybox")


def test_64_hex_is_never_a_repository_name() -> None:
    with pytest.raises(InvalidParameter, match="cannot specify 64-byte hexadecimal strings"):
        parse(HEX)


def test_default_tag_only_without_tag_or_digest() -> None:
    assert parse_tagged("busybox").string() == "docker.io/library/busybox:latest"
    assert parse_tagged("busybox:1").tag == "1"
    assert parse_tagged(f"busybox@sha256:{HEX}").tag == ""


def test_parse_repository_with_separate_tag_and_tag_inside_repo() -> None:
    assert parse_repository("docker.io/myrepo/bb", "v1") == Reference("docker.io/myrepo/bb", "v1")
    assert parse_repository("127.0.0.1:5000/bbx:v1") == Reference("127.0.0.1:5000/bbx", "v1")
    assert parse_repository("spy") == Reference("docker.io/library/spy", "latest")
    with pytest.raises(InvalidParameter):
        parse_repository("x", "bad tag")


def test_ids_and_prefixes() -> None:
    assert reference.full_id(HEX) == f"sha256:{HEX}"
    assert reference.full_id(f"sha256:{HEX}") == f"sha256:{HEX}"
    assert reference.full_id(HEX[:12]) is None
    assert reference.id_prefix("5e38") == "5e38"
    assert reference.id_prefix("sha256:5e") == "5e"
    assert reference.id_prefix("busybox") is None
    assert reference.short_id(f"sha256:{HEX}") == "5e38fda097eb"
