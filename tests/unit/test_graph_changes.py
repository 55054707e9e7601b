"""``--change`` instructions applied to a container config (berth.graph.changes)."""

from __future__ import annotations

import pytest

from berth.errors import InvalidParameter
from berth.graph.changes import apply_changes, expand_port, parse_duration, process_word, split_words


def test_cmd_json_and_shell_forms() -> None:
    assert apply_changes({}, ['CMD ["sh", "-c", "echo hi"]'])["Cmd"] == ["sh", "-c", "echo hi"]
    assert apply_changes({}, ["CMD echo hi there"])["Cmd"] == ["/bin/sh", "-c", "echo hi there"]
    # not a JSON array of strings: the shell form, like Docker
    assert apply_changes({}, ["CMD [1, 2]"])["Cmd"] == ["/bin/sh", "-c", "[1, 2]"]


def test_entrypoint_resets_inherited_cmd_unless_cmd_given_first() -> None:
    base = {"Cmd": ["sh"]}
    assert apply_changes(base, ['ENTRYPOINT ["top"]']) == {"Cmd": None, "Entrypoint": ["top"]}
    both = apply_changes(base, ['CMD ["-b"]', 'ENTRYPOINT ["top"]'])
    assert both["Cmd"] == ["-b"] and both["Entrypoint"] == ["top"]
    assert apply_changes({}, ["ENTRYPOINT run me"])["Entrypoint"] == ["/bin/sh", "-c", "run me"]


def test_env_forms_quotes_expansion_and_replacement() -> None:
    config = apply_changes(
        {"Env": ["PATH=/bin"]},
        [
            "ENV A=1 B='two words' C=\"x y\"",
            "ENV LEGACY value with spaces",
            "ENV PATH=$PATH:/sbin D=${A}0",
            "ENV E=${NOPE:-dflt} F=${A:+set}",
        ],
    )
    assert config["Env"] == [
        "PATH=/bin:/sbin",
        "A=1",
        "B=two words",
        "C=x y",
        "LEGACY=value with spaces",
        "D=10",
        "E=dflt",
        "F=set",
    ]


def test_label_expose_volume_user_workdir() -> None:
    config = apply_changes(
        {},
        [
            'LABEL app=test "with space"=yes',
            "EXPOSE 80 53/udp 8000-8001",
            'VOLUME ["/data"]',
            "VOLUME /a /b",
            "USER nobody:nogroup",
            "WORKDIR /srv",
            "WORKDIR app/../web",
        ],
    )
    assert config["Labels"] == {"app": "test", "with space": "yes"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert config["Volumes"] == {"/data": {}, "/a": {}, "/b": {}}
    assert config["User"] == "nobody:nogroup"
    assert config["WorkingDir"] == "/srv/web"


def test_instructions_are_case_insensitive_and_blank_lines_skipped() -> None:
    assert apply_changes({}, ["", "# comment", 'cmd ["a"]'])["Cmd"] == ["a"]


def test_healthcheck_and_onbuild() -> None:
    config = apply_changes(
        {}, ["HEALTHCHECK --interval=30s --retries=2 CMD curl -f http://x/", "ONBUILD RUN make"]
    )
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://x/"],
        "Interval": 30 * 10**9,
        "Retries": 2,
    }
    assert config["OnBuild"] == ["RUN make"]
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize("change", ["RUN echo", "FROM busybox", "COPY a b", "STOPSIGNAL 9", "MAINTAINER me"])
def test_invalid_change_commands_use_dockers_text(change: str) -> None:
    word = change.split()[0].lower()
    with pytest.raises(InvalidParameter, match=f"^{word} is not a valid change command$"):
        apply_changes({}, [change])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("EXPOSE abc", "invalid containerPort: abc"),
        ("EXPOSE 80/xyz", "invalid proto: xyz"),
        ("LABEL", "LABEL requires at least one argument"),
        ("ENV A=1 B", "Syntax error - can't find ="),
        ("VOLUME", "VOLUME requires at least one argument"),
    ],
)
def test_bad_arguments_are_invalid_parameters(change: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        apply_changes({}, [change])


def test_input_config_is_not_modified() -> None:
    base = {"Env": ["A=1"]}
    apply_changes(base, ["ENV B=2"])
    assert base == {"Env": ["A=1"]}


def test_words_and_durations() -> None:
    assert split_words("a 'b c' \"d e\" f\\ g") == ["a", "'b c'", '"d e"', "f\\ g"]
    assert process_word("'$X'\"$X\"\\$X", {"X": "1"}) == "$X1$X"
    assert expand_port("7") == ["7/tcp"]
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("250ms") == 250 * 10**6
    with pytest.raises(InvalidParameter, match="invalid duration"):
        parse_duration("5x")
