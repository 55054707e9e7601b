"""The declarative option parser follows pflag's rules (docker's flags)."""

from __future__ import annotations

import pytest

from berth.cli.containerspec import RUN_SPEC
from berth.cli.options import Command, Flag, parse
from berth.errors import InvalidParameter

PS = Command(
    "ps",
    "berth ps",
    "List",
    (
        Flag(("-a", "--all")),
        Flag(("-q", "--quiet")),
        Flag(("-n", "--last"), "int", default=-1),
        Flag(("-f", "--filter"), "list"),
        Flag(("--format",), "value"),
        Flag(("--no-trunc",)),
    ),
    max_args=0,
)


def test_defaults_and_long_short_forms():
    opts, args = parse(PS, [])
    assert opts == {
        "all": False,
        "quiet": False,
        "last": -1,
        "filter": [],
        "format": None,
        "no_trunc": False,
        "help": False,
    }
    assert args == []
    opts, _ = parse(PS, ["--all", "-n", "3", "--format={{.ID}}", "--no-trunc"])
    assert (opts["all"], opts["last"], opts["format"], opts["no_trunc"]) == (True, 3, "{{.ID}}", True)


def test_value_attached_to_short_flag_and_equals_form():
    assert parse(PS, ["-n5"])[0]["last"] == 5
    assert parse(PS, ["-n=7"])[0]["last"] == 7
    assert parse(PS, ["-fstatus=running"])[0]["filter"] == ["status=running"]


def test_repeated_list_flags_accumulate_in_order():
    opts, _ = parse(PS, ["-f", "a=1", "--filter", "b=2", "--filter=c=3"])
    assert opts["filter"] == ["a=1", "b=2", "c=3"]


def test_combined_booleans_and_a_trailing_value_flag():
    opts, _ = parse(PS, ["-aq"])
    assert opts["all"] and opts["quiet"]
    opts, _ = parse(PS, ["-aqn", "2"])
    assert opts["all"] and opts["quiet"] and opts["last"] == 2


def test_bool_with_explicit_value():
    assert parse(PS, ["--all=false"])[0]["all"] is False
    assert parse(PS, ["--all=true"])[0]["all"] is True
    with pytest.raises(InvalidParameter, match="strconv.ParseBool"):
        parse(PS, ["--all=maybe"])


def test_run_stops_at_the_first_positional():
    opts, args = parse(RUN_SPEC, ["-it", "--rm", "-e", "A=1", "busybox", "ls", "-l", "--all"])
    assert opts["interactive"] and opts["tty"] and opts["rm"] and opts["env"] == ["A=1"]
    assert args == ["busybox", "ls", "-l", "--all"]


def test_run_hostname_short_flag_is_not_help():
    opts, args = parse(RUN_SPEC, ["-h", "box", "busybox"])
    assert opts["hostname"] == "box" and not opts["help"] and args == ["busybox"]


def test_double_dash_and_lone_dash_are_positionals():
    spec = Command("x", "x", "x", (Flag(("-a",)),))
    assert parse(spec, ["-", "--", "-a"]) == ({"a": False, "help": False}, ["-", "-a"])


def test_errors_use_pflag_text():
    with pytest.raises(InvalidParameter, match="^unknown flag: --bogus$"):
        parse(PS, ["--bogus"])
    with pytest.raises(InvalidParameter, match="^unknown shorthand flag: 'z' in -az$"):
        parse(PS, ["-az"])
    with pytest.raises(InvalidParameter, match="^flag needs an argument: --format$"):
        parse(PS, ["--format"])
    with pytest.raises(InvalidParameter, match="^flag needs an argument: 'n' in -n$"):
        parse(PS, ["-n"])
    with pytest.raises(InvalidParameter, match='invalid argument "x" for "-n, --last" flag'):
        parse(PS, ["-n", "x"])


def test_arity_messages():
    with pytest.raises(InvalidParameter, match='"berth ps" accepts no arguments.'):
        parse(PS, ["extra"])
    one = Command("logs", "u", "s", (), min_args=1, max_args=1)
    with pytest.raises(InvalidParameter, match='"berth logs" requires exactly 1 argument.'):
        parse(one, [])
    many = Command("rm", "u", "s", (), min_args=1)
    with pytest.raises(InvalidParameter, match='"berth rm" requires at least 1 argument.'):
        parse(many, [])


def test_help_skips_arity_and_renders_options():
    spec = Command(
        "rm", "berth rm CONTAINER", "Remove", (Flag(("-f", "--force"), help="Force it"),), min_args=1
    )
    opts, _ = parse(spec, ["--help"])
    assert opts["help"]
    text = spec.help_text()
    assert "Usage:  berth rm CONTAINER" in text and "-f, --force" in text and "Force it" in text
