"""The Dockerfile parser and the typed instructions (berth.builder.parser, .instructions, .words)."""

from __future__ import annotations

import pytest

from berth.builder import instructions as ins
from berth.builder.parser import DockerfileError, parse
from berth.builder.words import extract_flags, go_quote_list, maybe_json, name_values, parse_words


def instructions(text: str) -> list[ins.Instruction]:
    df = parse(text)
    return [ins.parse_instruction(n, df.escape) for n in df.nodes]


def test_continuations_join_as_written_and_skip_comments_and_blank_lines() -> None:
    df = parse("FROM busybox\nRUN echo a \\\n  && echo b \\\n# a comment inside\n\n  && echo c\nCMD x\n")
    run = df.nodes[1]
    assert (run.keyword, run.start_line, run.end_line) == ("run", 2, 6)
    assert run.original == "RUN echo a   && echo b   && echo c"
    assert df.nodes[2].start_line == 7
    assert df.warnings  # the empty continuation line is reported, as BuildKit does


def test_continuation_with_trailing_blanks_after_the_backslash() -> None:
    df = parse("RUN a \\  \t\n b\n")
    assert df.nodes[0].original == "RUN a  b"


def test_escape_directive_backtick() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo done\n")
    assert df.escape == "`"
    assert df.nodes[1].original == "RUN dir c:\\   && echo done"


def test_directives_only_at_the_top_and_once() -> None:
    df = parse("FROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.nodes[1].original == "RUN a  b"
    with pytest.raises(DockerfileError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM x\n")
    # syntax and check are directives too (accepted, no effect); an unknown one ends them
    assert parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n").escape == "`"
    assert parse("# foo=bar\n# escape=`\nFROM x\n").escape == "\\"


def test_unknown_instruction_names_line_and_instruction() -> None:
    with pytest.raises(DockerfileError) as err:
        parse("FROM busybox\n\nRUNN echo\n")
    assert err.value.message == "dockerfile parse error line 3: unknown instruction: RUNN"


def test_heredocs() -> None:
    df = parse("FROM b\nRUN <<EOF\necho $HOME\nEOF\nCOPY <<-'A' <<B /dst/\n\tone\n\tA\ntwo\nB\nCMD x\n")
    run, copy = df.nodes[1], df.nodes[2]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo $HOME\n" and run.heredocs[0].expand
    assert [(d.name, d.content, d.expand) for d in copy.heredocs] == [("A", "one\n", False), ("B", "two\n", True)]
    assert df.nodes[3].keyword == "cmd" and df.nodes[3].start_line == 10
    with pytest.raises(DockerfileError, match="unterminated heredoc EOF"):
        parse("RUN <<EOF\necho\n")
    # heredocs only for RUN, COPY, ADD
    with pytest.raises(DockerfileError, match="unknown instruction: EOF"):
        parse("CMD cat <<EOF\nEOF\n")


def test_instruction_forms() -> None:
    got = instructions(
        'FROM --platform=linux/amd64 busybox AS Build\n'
        'RUN ["echo", "hi"]\n'
        'RUN [not json\n'
        'CMD echo hi\n'
        'ENTRYPOINT []\n'
        'SHELL ["/bin/bash", "-c"]\n'
        'ENV A="a b" C=d\n'
        'ENV LEGACY  value with spaces\n'
        'ARG X Y=2\n'
        'COPY --from=0 --chown=1:2 --chmod=640 a b /dst/\n'
        'ADD ["a b", "/c"]\n'
        'VOLUME ["/data", "/x"]\n'
        'HEALTHCHECK --interval=5s --retries=3 CMD ["true"]\n'
        'ONBUILD RUN echo later\n'
    )
    frm, run1, run2, cmd, ep, shell, env1, env2, arg, copy, add, vol, hc, ob = got
    assert isinstance(frm, ins.From) and (frm.image, frm.stage_name, frm.platform) == ("busybox", "build", "linux/amd64")
    assert isinstance(run1, ins.Run) and run1.args == ("echo", "hi") and run1.json_form
    assert isinstance(run2, ins.Run) and run2.args == ("[not json",) and not run2.json_form
    assert isinstance(cmd, ins.Cmd) and cmd.args == ("echo hi",)
    assert isinstance(ep, ins.Entrypoint) and ep.args is None
    assert isinstance(shell, ins.Shell) and shell.args == ("/bin/bash", "-c")
    assert isinstance(env1, ins.Env) and env1.pairs == (("A", '"a b"'), ("C", "d"))
    assert isinstance(env2, ins.Env) and env2.pairs == (("LEGACY", "value with spaces"),)
    assert isinstance(arg, ins.Arg) and arg.args == (("X", None), ("Y", "2"))
    assert isinstance(copy, ins.Copy) and (copy.sources, copy.dest, copy.from_, copy.chown, copy.chmod) == (
        ("a", "b"), "/dst/", "0", "1:2", "640")
    assert isinstance(add, ins.Copy) and add.is_add and add.sources == ("a b",) and add.json_form
    assert isinstance(vol, ins.Volume) and vol.paths == ("/data", "/x")
    assert isinstance(hc, ins.Healthcheck) and hc.config == {"Test": ["CMD", "true"], "Interval": 5_000_000_000,
                                                             "Retries": 3}
    assert isinstance(ob, ins.Onbuild) and ob.expression == "RUN echo later"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM b\nCOPY --foo=1 a b\n", "dockerfile parse error line 2: COPY: Unknown flag: foo"),
        ("FROM b\nCOPY --chown a b\n", "line 2: COPY: Missing a value on flag: chown"),
        ("FROM b\nRUN --mount=type=cache echo\n", "line 2: RUN: the --mount option requires BuildKit"),
        ("FROM b\nENV\n", "line 2: ENV requires at least one argument"),
        ("FROM b\nENV x=1 y\n", "line 2: ENV: Syntax error - can't find = in \"y\". Must be of the form: name=value"),
        ("FROM b\nLABEL onlykey\n", "line 2: LABEL must have two arguments"),
        ("FROM b\nCOPY onlyone\n", "line 2: COPY requires at least two arguments, but only one was provided"),
        ("FROM a b\n", "line 1: FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", "line 1: FROM: invalid name for build stage"),
        ("FROM b\nSHELL sh -c\n", "line 2: SHELL requires the arguments to be in JSON form"),
        ("FROM b\nHEALTHCHECK WHAT x\n", 'line 2: Unknown type "WHAT" in HEALTHCHECK (try CMD)'),
        ("FROM b\nHEALTHCHECK NONE x\n", "line 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM b\nHEALTHCHECK --interval=1us CMD x\n", "cannot be less than 1ms"),
        ("FROM b\nHEALTHCHECK --retries=0 CMD x\n", "--retries must be at least 1"),
        ("FROM b\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM b\nONBUILD FROM x\n", '"FROM" isn\'t allowed as an ONBUILD trigger'),
        ("FROM b\nRUN [1, 2]\n", "line 2: RUN: when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM b\nCOPY --chmod=9z a b\n", "invalid chmod parameter: 9z"),
        ("FROM b\nWORKDIR\n", "WORKDIR requires exactly one argument"),
    ],
)
def test_instruction_errors_name_line_and_instruction(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        instructions(text)
    assert message in err.value.message


def test_words_helpers() -> None:
    assert extract_flags('--from=build --chown="a b" src /dst') == ("src /dst", ["from=build", "chown=a b"])
    assert extract_flags("-- --notaflag x") == ("--notaflag x", [])
    assert extract_flags("--x") == ("", ["x"])
    assert parse_words('A="hello world" B=x\\ y  C=\'q\'', "\\") == ['A="hello world"', "B=x\\ y", "C='q'"]
    assert maybe_json('["a", "b"] trailing') == (["a", "b"], True)  # Go's decoder stops after the value
    assert maybe_json("[bad") is None and maybe_json("plain") is None
    assert name_values("K V W", "\\", "ENV") == [("K", "V W")]
    assert go_quote_list(["cat", '/a "b"']) == '["cat" "/a \\"b\\""]'
