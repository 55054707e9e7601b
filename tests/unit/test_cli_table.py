"""Tables and rows as docker prints them: tabwriter, ps and images rows, jobs selection."""

from __future__ import annotations

import pytest

from berth.cli.commands.images import DEFAULT_TABLE as IMAGES_TABLE
from berth.cli.commands.images import DIGEST_TABLE, image_rows
from berth.cli.commands.images import HEADERS as IMAGE_HEADERS
from berth.cli.commands.jobs import JobRow, select_jobs
from berth.cli.commands.ps import DEFAULT_TABLE, HEADERS, ContainerRow, display_ports, ellipsis, go_quote
from berth.cli.formatter import FieldTemplate, render
from berth.cli.tabwriter import tabwrite

NOW = 1_795_840_400.0


def test_tabwriter_matches_dockers_empty_ps_header():
    header = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n"
    assert tabwrite(header) == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_tabwriter_ragged_lines_form_column_blocks():
    text = "a\tb\tc\nlonger-cell\tx\ny\n"
    assert tabwrite(text) == "a             b         c\nlonger-cell   x\ny\n"


def test_ps_row_fields_like_docker():
    c = {
        "Id": "439dfec7ad2a" + "0" * 52,
        "Names": ["/pb_httpd", "/other/alias"],
        "Image": "busybox",
        "Command": "httpd -f -p 80 -h /www",
        "Created": NOW - 19,
        "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}],
        "Status": "Up 18 seconds",
        "State": "running",
        "SizeRw": 0,
        "SizeRootFs": 1982354,
        "Labels": {"a": "1"},
    }
    row = ContainerRow(c, trunc=True, now=NOW)
    assert row.ID == "439dfec7ad2a"
    assert row.Names == "pb_httpd"
    assert row.Command == '"httpd -f -p 80 -h /…"'
    assert row.RunningFor == "19 seconds ago"
    assert row.Ports == "127.0.0.1:18080->80/tcp"
    assert row.Size == "0B (virtual 1.98MB)"
    assert row.Label("a") == "1"
    out = render(DEFAULT_TABLE + "\t{{.Size}}", [row], HEADERS)
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED          STATUS          PORTS                     NAMES      SIZE",
        '439dfec7ad2a   busybox   "httpd -f -p 80 -h /…"   19 seconds ago   Up 18 seconds   127.0.0.1:18080->80/tcp   pb_httpd   0B (virtual 1.98MB)',
    ]


def test_ps_untruncated_and_sha_image():
    c = {"Id": "f" * 64, "Names": ["/a/b"], "Image": "sha256:" + "e" * 64, "Command": "x" * 30}
    assert ContainerRow(c, trunc=True).Image == "e" * 12
    full = ContainerRow(c, trunc=False)
    assert full.ID == "f" * 64 and full.Names == "a/b" and full.Command == '"' + "x" * 30 + '"'


def test_ports_grouping():
    ports = [
        {"PrivatePort": 80, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
        {"IP": "::", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
    ]
    assert display_ports(ports) == "80-81/tcp, 0.0.0.0:5353->53/udp, [::]:8443->443/tcp"
    same = [{"IP": "127.0.0.1", "PrivatePort": p, "PublicPort": p, "Type": "tcp"} for p in (80, 81)]
    assert display_ports(same) == "127.0.0.1:80-81->80-81/tcp"


def test_quote_and_ellipsis():
    assert ellipsis("abcdef", 4) == "abc…"
    assert ellipsis("abc", 4) == "abc"
    assert go_quote('say "hi"\n') == '"say \\"hi\\"\\n"'


def test_json_format_uses_row_fields():
    row = ContainerRow({"Id": "a" * 64, "Names": ["/n"], "Created": NOW}, trunc=True, now=NOW)
    out = render("{{json .}}", [row], HEADERS)
    assert '"Names":"n"' in out and '"ID":"aaaaaaaaaaaa"' in out


def test_field_template_fast_path_only_for_plain_fields():
    assert FieldTemplate.parse("table {{.ID}}\t{{.Names}}") is not None
    assert FieldTemplate.parse("{{json .}}") is None
    assert FieldTemplate.parse('{{.Label "x"}}') is None


def test_images_rows_tags_digests_and_dangling():
    img = {
        "Id": "sha256:db7ffadef99d" + "1" * 52,
        "Created": NOW - 16 * 60,
        "Size": 1982354,
        "RepoTags": ["127.0.0.1:5051/bbx:v1", "docker.io/library/busybox:latest"],
        "RepoDigests": ["127.0.0.1:5051/bbx@sha256:8c11"],
    }
    rows = image_rows(img, show_digests=True, trunc=True, now=NOW)
    assert [(r.Repository, r.Tag, r.Digest) for r in rows] == [
        ("127.0.0.1:5051/bbx", "v1", "sha256:8c11"),
        ("busybox", "latest", "<none>"),
    ]
    out = render(DIGEST_TABLE, rows[:1], IMAGE_HEADERS).splitlines()
    assert out[0] == "REPOSITORY           TAG       DIGEST        IMAGE ID       CREATED          SIZE"
    assert out[1] == "127.0.0.1:5051/bbx   v1        sha256:8c11   db7ffadef99d   16 minutes ago   1.98MB"
    dangling = image_rows(
        {
            "Id": "sha256:" + "2" * 64,
            "RepoTags": ["<none>:<none>"],
            "RepoDigests": ["<none>@<none>"],
            "Created": 0,
        },
        False,
        True,
    )
    assert [(r.Repository, r.Tag, r.CreatedSince) for r in dangling] == [("<none>", "<none>", "N/A")]
    assert render(IMAGES_TABLE, [], IMAGE_HEADERS).startswith("REPOSITORY   TAG       IMAGE ID")


def test_jobs_selection_keeps_running_and_last_finished():
    jobs = [{"ID": f"j{i:02d}", "Status": "ok", "StartedAt": f"2026-11-28T05:00:{i:02d}Z"} for i in range(30)]
    jobs.insert(
        3, {"ID": "run", "Status": "running", "StartedAt": "2026-11-28T04:00:00Z", "DurationMs": None}
    )
    chosen = select_jobs(jobs, show_all=False, recent=20)
    assert chosen[0]["ID"] == "run" and len(chosen) == 21 and chosen[1]["ID"] == "j10"
    assert len(select_jobs(jobs, show_all=True)) == 31
    row = JobRow(
        {"ID": "x" * 20, "Name": "container.start", "Status": "error", "DurationMs": 12.34, "Error": "boom"},
        trunc=True,
    )
    assert (row.ID, row.Duration, row.Error) == ("x" * 12, "12.3ms", "boom")
    assert JobRow({"DurationMs": None}, True).Duration == "-"


@pytest.fixture
def utc(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_event_line_like_docker(utc):
    from berth.cli.commands.events import event_line, rfc3339nano

    event = {
        "Type": "container",
        "Action": "die",
        "timeNano": 1795840559007111532,
        "Actor": {"ID": "f0fa", "Attributes": {"name": "evtest", "exitCode": "0", "image": "busybox"}},
    }
    assert event_line(event) == (
        "2026-11-28T04:35:59.007111532Z container die f0fa (exitCode=0, image=busybox, name=evtest)\n"
    )
    assert rfc3339nano(1795840559_500000000) == "2026-11-28T04:35:59.5Z"
    assert rfc3339nano(1795840559_000000000) == "2026-11-28T04:35:59Z"
