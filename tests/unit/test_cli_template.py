"""The Go text/template subset used by --format."""

from __future__ import annotations

import pytest

from berth.cli.template import Template
from berth.cli.templatefuncs import go_str
from berth.errors import InvalidParameter

DATA = {
    "Id": "abc",
    "State": {"Status": "running", "Pid": 42, "Running": True},
    "Config": {"Cmd": ["sh", "-c", "x"], "Labels": {"b": "2", "a": "1", "com.x": "y"}, "Env": None},
    "Size": 1.5,
}


def render(text, data=DATA):
    return Template(text).render(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.Id}}", "abc"),
        ("{{.State.Status}}/{{.State.Pid}}/{{.State.Running}}", "running/42/true"),
        ("{{.Config.Cmd}}", "[sh -c x]"),
        ("{{.Config.Labels}}", "map[a:1 b:2 com.x:y]"),
        ("{{.Config.Env}}", "<nil>"),
        ("{{.Nope}}", "<no value>"),
        ("{{json .Config.Cmd}}", '["sh","-c","x"]'),
        ("{{json .State}}", '{"Status":"running","Pid":42,"Running":true}'),
        ('{{index .Config.Labels "com.x"}}', "y"),
        ("{{index .Config.Cmd 1}}", "-c"),
        ("{{range .Config.Cmd}}<{{.}}>{{end}}", "<sh><-c><x>"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "a=1 b=2 com.x=y "),
        ("{{range .Config.Env}}x{{else}}empty{{end}}", "empty"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ('{{if eq .State.Status "exited"}}E{{else}}R{{end}}', "R"),
        ("{{.Id | upper}}", "ABC"),
        ('{{join .Config.Cmd ","}}', "sh,-c,x"),
        ('{{printf "%5s|%d" .Id .State.Pid}}', "  abc|42"),
        ("a  {{- .Id -}}  b", "aabcb"),
        ("{{len .Config.Cmd}}", "3"),
        ("{{(index .Config.Cmd 0) | upper}}", "SH"),
        ("{{$.Id}}", "abc"),
        ("{{.Size}}", "1.5"),
        ("{{println .Id}}", "abc\n"),
        ("{{with .State}}{{.Status}}{{end}}", "running"),
    ],
)
def test_render(text, expected):
    assert render(text) == expected


class Row:
    ID = "c1"

    def Label(self, name):  # noqa: N802 - docker's field name
        return {"k": "v"}.get(name, "")


def test_methods_take_arguments_and_struct_fields_must_exist():
    assert render('{{.ID}} {{.Label "k"}}', Row()) == "c1 v"
    with pytest.raises(InvalidParameter, match="can't evaluate field Nope"):
        render("{{.Nope}}", Row())


@pytest.mark.parametrize(
    "text", ["{{.Id", "{{if .Id}}x", "{{end}}", "{{nosuchfunc .Id}}", '{{"unterminated}}']
)
def test_parse_errors(text):
    with pytest.raises(InvalidParameter):
        render(text)


def test_go_value_printing():
    assert go_str(1000000.0) == "1e+06"
    assert go_str(123456.0) == "123456"
    assert go_str(12) == "12"
    assert go_str([1, "a", None]) == "[1 a <nil>]"
    assert go_str({"z": False}) == "map[z:false]"
