"""The berth command end to end against berth.client.fake: sequences, output, exit codes."""

from __future__ import annotations

import json
import os
import threading
import uuid

import pytest

from berth.cli.main import main
from berth.client.fake import FakeDaemon, frame

CID = "c0ffee" + "0" * 58


@pytest.fixture
def sock_path(monkeypatch):
    path = f"/tmp/bcm-{uuid.uuid4().hex[:10]}.sock"
    monkeypatch.setenv("BERTH_HOST", f"unix://{path}")
    monkeypatch.delenv("BERTH_API_VERSION", raising=False)
    yield path
    if os.path.exists(path):
        os.unlink(path)


class Engine:
    """A tiny scripted engine: one container whose process prints and exits at start."""

    def __init__(self, *, exit_code=0, out=b"hi\n", err=b"", start_error=None, missing_image=False):
        self.exit_code = exit_code
        self.out = out
        self.err = err
        self.start_error = start_error
        self.missing_image = missing_image
        self.started = threading.Event()
        self.exited = threading.Event()
        self.stdin = None
        self.create_body = None

    def __call__(self, req, reply):
        route = req.route
        if route == "/_ping":
            return reply.send(200, b"OK")
        if route == "/containers/create":
            self.create_body = req.json()
            if self.missing_image:
                return reply.error(404, f"No such image: {self.create_body['Image']}:latest")
            return reply.json(201, {"Id": CID, "Warnings": []})
        if route == f"/containers/{CID}/attach":
            sock = reply.upgrade()
            if req.query.get("stdin") == "1":
                self.stdin = reply.read_stdin()
            self.started.wait(5)
            if self.out:
                sock.sendall(frame(1, self.out))
            if self.err:
                sock.sendall(frame(2, self.err))
            self.exited.set()
            sock.shutdown(2)
            return None
        if route == f"/containers/{CID}/wait":
            reply.begin_chunked()
            self.exited.wait(5) if self.start_error is None else None
            reply.chunk(json.dumps({"Error": None, "StatusCode": self.exit_code}).encode() + b"\n")
            return reply.end_chunked()
        if route == f"/containers/{CID}/start":
            if self.start_error:
                return reply.error(400, self.start_error)
            self.started.set()
            return reply.send(204)
        if route == f"/containers/{CID}/kill":
            return reply.send(204)
        return reply.error(404, f"page not found: {req.method} {route}")


def run_main(argv, capsys, stdin_data=None, monkeypatch=None):
    if stdin_data is not None:
        r, w = os.pipe()
        os.write(w, stdin_data)
        os.close(w)
        stream = os.fdopen(r, "rb")
        monkeypatch.setattr("sys.stdin", stream)
    try:
        code = main(argv)
    finally:
        if stdin_data is not None:
            stream.close()
    out, err = capsys.readouterr()
    return code, out, err


def test_no_daemon_message_and_exit_code(capsys, tmp_path):
    code, out, err = run_main(["-H", f"unix://{tmp_path}/none.sock", "ps"], capsys)
    assert code == 1 and out == ""
    assert (
        err
        == f"Cannot connect to the berth daemon at unix://{tmp_path}/none.sock. Is the berth daemon running?\n"
    )


def test_default_host_in_message(capsys, monkeypatch):
    monkeypatch.delenv("BERTH_HOST", raising=False)
    if os.path.exists("/run/berth/berth.sock"):
        pytest.skip("a berth daemon listens on the default socket on this machine")
    code, _, err = run_main(["ps"], capsys)
    assert code == 1
    assert err == (
        "Cannot connect to the berth daemon at unix:///run/berth/berth.sock. Is the berth daemon running?\n"
    )


def test_usage_errors_exit_125(capsys):
    code, _, err = run_main(["ps", "--bogus"], capsys)
    assert code == 125 and err == "unknown flag: --bogus\nSee 'berth ps --help'.\n"
    code, _, err = run_main(["nosuchcommand"], capsys)
    assert code == 1 and "'nosuchcommand' is not a berth command" in err
    code, out, _ = run_main(["ps", "--help"], capsys)
    assert code == 0 and "Usage:  berth ps [OPTIONS]" in out


def test_ps_table_and_quiet(sock_path, capsys):
    import time

    listing = [
        {
            "Id": CID,
            "Names": ["/web"],
            "Image": "busybox",
            "Command": "sleep 300",
            "Created": int(time.time()) - 1,
            "Status": "Up Less than a second",
            "State": "running",
            "Ports": [],
            "Labels": {},
        }
    ]

    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        assert req.route == "/containers/json"
        reply.json(200, listing)

    with FakeDaemon(sock_path, handler) as daemon:
        code, out, _ = run_main(["ps", "-a", "--filter", "status=running"], capsys)
        assert code == 0
        assert out.splitlines() == [
            "CONTAINER ID   IMAGE     COMMAND       CREATED        STATUS                  PORTS     NAMES",
            'c0ffee000000   busybox   "sleep 300"   1 second ago   Up Less than a second             web',
        ]
        code, out, _ = run_main(["ps", "-q"], capsys)
        assert out == "c0ffee000000\n"
    query = daemon.requests[1].query
    assert query["all"] == "1" and json.loads(query["filters"]) == {"status": {"running": True}}
    # one keep-alive connection per command: ping + list
    assert daemon.requests[0].conn_no == daemon.requests[1].conn_no


def test_run_sequence_output_and_exit_code(sock_path, capsys):
    engine = Engine(exit_code=3, out=b"out\n", err=b"err\n")
    with FakeDaemon(sock_path, engine) as daemon:
        code, out, err = run_main(["run", "--rm", "busybox", "sh", "-c", "exit 3"], capsys)
    assert (code, out, err) == (3, "out\n", "err\n")
    routes = [r for r in daemon.routes() if r != "HEAD /_ping"]
    assert routes == [
        "POST /containers/create",
        f"POST /containers/{CID}/attach",
        f"POST /containers/{CID}/wait",
        f"POST /containers/{CID}/start",
    ]
    by_route = {r.route: r for r in daemon.requests}
    assert by_route[f"/containers/{CID}/wait"].query == {"condition": "removed"}
    attach = by_route[f"/containers/{CID}/attach"]
    assert attach.query == {"stream": "1", "stdout": "1", "stderr": "1"}
    conns = {r.route: r.conn_no for r in daemon.requests}
    assert (
        len(
            {
                conns[f"/containers/{CID}/attach"],
                conns[f"/containers/{CID}/wait"],
                conns[f"/containers/{CID}/start"],
            }
        )
        == 3
    )
    assert engine.create_body["HostConfig"]["AutoRemove"] is True


def test_run_interactive_sends_stdin_before_start(sock_path, capsys, monkeypatch):
    engine = Engine(out=b"line1\nline2\n")
    with FakeDaemon(sock_path, engine) as daemon:
        code, out, _ = run_main(["run", "-i", "busybox", "cat"], capsys, b"line1\nline2\n", monkeypatch)
    assert code == 0 and out == "line1\nline2\n"
    assert engine.stdin == b"line1\nline2\n"
    wait = next(r for r in daemon.requests if r.route.endswith("/wait"))
    assert wait.query == {"condition": "next-exit"}
    assert engine.create_body["StdinOnce"] is True and engine.create_body["OpenStdin"] is True


def test_run_tty_output_is_raw_and_stdout_without_fd_is_fine(sock_path, capsys):
    class TtyEngine(Engine):
        def __call__(self, req, reply):
            if req.route == f"/containers/{CID}/attach":
                sock = reply.upgrade()
                self.started.wait(5)
                sock.sendall(b"\x01\x00raw bytes\r\n")  # no frames with a TTY
                self.exited.set()
                sock.shutdown(2)
                return None
            return super().__call__(req, reply)

    engine = TtyEngine(exit_code=5)
    with FakeDaemon(sock_path, engine):
        code, out, _ = run_main(["run", "-t", "--rm", "busybox", "sh"], capsys)
    assert (code, out) == (5, "\x01\x00raw bytes\r\n")
    assert engine.create_body["Tty"] is True and engine.create_body["HostConfig"]["ConsoleSize"] == [0, 0]


def test_run_detached_prints_full_id(sock_path, capsys):
    engine = Engine()
    engine.exited.set()
    with FakeDaemon(sock_path, engine) as daemon:
        code, out, _ = run_main(["run", "-d", "--name", "web", "busybox", "sleep", "9"], capsys)
    assert (code, out) == (0, CID + "\n")
    assert "attach" not in " ".join(daemon.routes())
    create = next(r for r in daemon.requests if r.route == "/containers/create")
    assert create.query == {"name": "web"}


def test_run_missing_image_pulls_and_reports_the_pull_error(sock_path, capsys):
    engine = Engine(missing_image=True)

    def handler(req, reply):
        if req.route == "/images/create":
            return reply.error(404, "manifest for nosuch:latest not found: manifest unknown")
        return engine(req, reply)

    with FakeDaemon(sock_path, handler) as daemon:
        code, out, err = run_main(["run", "--rm", "nosuch"], capsys)
    assert code == 125 and out == ""
    assert err.splitlines() == [
        "Unable to find image 'nosuch:latest' locally",
        "berth: Error response from daemon: manifest for nosuch:latest not found: manifest unknown",
        "",
        "Run 'berth run --help' for more information",
    ]
    pull = next(r for r in daemon.requests if r.route == "/images/create")
    assert pull.query == {"fromImage": "docker.io/library/nosuch", "tag": "latest"}
    assert pull.headers["x-registry-auth"] == "e30="


def test_run_pull_never_reports_the_create_error(sock_path, capsys):
    with FakeDaemon(sock_path, Engine(missing_image=True)) as daemon:
        code, _, err = run_main(["run", "--pull", "never", "nosuch"], capsys)
    assert code == 125
    assert "berth: Error response from daemon: No such image: nosuch:latest" in err
    assert "Unable to find image" not in err
    assert "POST /images/create" not in daemon.routes()


def test_run_pulls_then_creates_again(sock_path, capsys):
    engine = Engine(out=b"pulled\n")
    state = {"pulled": False}

    def handler(req, reply):
        if req.route == "/containers/create" and not state["pulled"]:
            return reply.error(404, "No such image: 127.0.0.1:5000/bb:v1")
        if req.route == "/images/create":
            state["pulled"] = True
            reply.begin_chunked()
            reply.chunk(b'{"status":"Pulling from bb","id":"v1"}\r\n')
            reply.chunk(b'{"status":"Downloading","progressDetail":{"current":5,"total":9},"id":"ab"}\r\n')
            reply.chunk(b'{"status":"Status: Downloaded newer image for 127.0.0.1:5000/bb:v1"}\r\n')
            return reply.end_chunked()
        return engine(req, reply)

    with FakeDaemon(sock_path, handler) as daemon:
        code, out, err = run_main(["run", "127.0.0.1:5000/bb:v1"], capsys)
    assert (code, out) == (0, "pulled\n")
    assert err.splitlines() == [
        "Unable to find image '127.0.0.1:5000/bb:v1' locally",
        "v1: Pulling from bb",
        "Status: Downloaded newer image for 127.0.0.1:5000/bb:v1",
    ]
    pull = next(r for r in daemon.requests if r.route == "/images/create")
    assert pull.query == {"fromImage": "127.0.0.1:5000/bb", "tag": "v1"}
    assert [r for r in daemon.routes() if "create" in r] == [
        "POST /containers/create",
        "POST /images/create",
        "POST /containers/create",
    ]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('exec: "/no/such/binary": stat /no/such/binary: no such file or directory', 127),
        ("exec: /etc/passwd: permission denied", 126),
        ("network testnet not found", 125),
    ],
)
def test_run_start_failure_exit_codes(sock_path, capsys, message, code):
    engine = Engine(start_error=message, exit_code=127)
    engine.started.set()
    with FakeDaemon(sock_path, engine):
        got, _, err = run_main(["run", "--rm", "busybox", "/no/such/binary"], capsys)
    assert got == code
    assert err.startswith(f"berth: Error response from daemon: {message}\n")


def test_exec_exit_code_and_detach(sock_path, capsys):
    eid = "e" * 64

    def handler(req, reply):
        route = req.route
        if route == "/_ping":
            return reply.send(200, b"OK")
        if route == "/containers/web/json":
            return reply.json(200, {"Id": CID, "Config": {"Tty": False}})
        if route == "/containers/web/exec":
            handler.body = req.json()
            return reply.json(201, {"Id": eid})
        if route == f"/exec/{eid}/start":
            if req.json()["Detach"]:
                return reply.send(200, b"")
            sock = reply.upgrade()
            sock.sendall(frame(1, b"exec-out\n") + frame(2, b"exec-err\n"))
            sock.shutdown(2)
            return None
        if route == f"/exec/{eid}/json":
            return reply.json(200, {"ID": eid, "Running": False, "ExitCode": 7})
        return reply.error(404, "page not found")

    with FakeDaemon(sock_path, handler) as daemon:
        code, out, err = run_main(["exec", "-e", "X=1", "-w", "/etc", "web", "sh", "-c", "exit 7"], capsys)
        assert (code, out, err) == (7, "exec-out\n", "exec-err\n")
        assert handler.body["Env"] == ["X=1"] and handler.body["WorkingDir"] == "/etc"
        assert handler.body["Cmd"] == ["sh", "-c", "exit 7"] and handler.body["Detach"] is False
        code, out, _ = run_main(["exec", "-d", "web", "sleep", "1"], capsys)
        assert (code, out) == (0, "")
    starts = [r for r in daemon.requests if r.route == f"/exec/{eid}/start"]
    assert starts[0].headers.get("upgrade") == "tcp" and "upgrade" not in starts[1].headers


def test_logs_demux_and_tty_raw(sock_path, capsys):
    state = {"tty": False}

    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route == "/containers/web/json":
            return reply.json(200, {"Id": CID, "Config": {"Tty": state["tty"]}})
        if req.route == f"/containers/{CID}/logs":
            handler.query = req.query
            reply.begin_chunked(content_type="application/vnd.docker.multiplexed-stream")
            if state["tty"]:
                reply.chunk(b"raw\r\n")
            else:
                reply.chunk(frame(1, b"line 1\n")[:5])
                reply.chunk(frame(1, b"line 1\n")[5:] + frame(2, b"err 1\n"))
            return reply.end_chunked()
        return reply.error(404, "page not found")

    with FakeDaemon(sock_path, handler):
        code, out, err = run_main(["logs", "--tail", "2", "-t", "--since", "10m", "web"], capsys)
        assert (code, out, err) == (0, "line 1\n", "err 1\n")
        assert handler.query["tail"] == "2" and handler.query["timestamps"] == "1"
        assert handler.query["since"].isdigit()  # a duration becomes whole Unix seconds
        state["tty"] = True
        code, out, _ = run_main(["logs", "web"], capsys)
        assert out == "raw\r\n"


def test_inspect_falls_back_to_images_and_reports_misses(sock_path, capsys):
    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route == "/images/busybox/json":
            return reply.json(200, {"Id": "sha256:1", "Config": {"Cmd": ["sh"]}})
        if req.route.startswith("/containers/"):
            return reply.error(404, "No such container: x")
        return reply.error(404, "not found")

    with FakeDaemon(sock_path, handler):
        code, out, err = run_main(["inspect", "-f", "{{.Id}} {{json .Config.Cmd}}", "busybox"], capsys)
        assert (code, out, err) == (0, 'sha256:1 ["sh"]\n', "")
        code, out, err = run_main(["inspect", "nosuch"], capsys)
        assert (code, out, err) == (1, "[]\n", "Error: No such object: nosuch\n")


def test_import_streams_file_chunked(sock_path, capsys, tmp_path):
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(os.urandom(200_000))

    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        handler.req = req
        reply.begin_chunked()
        reply.chunk(b'{"status":"sha256:abc"}\r\n')
        return reply.end_chunked()

    with FakeDaemon(sock_path, handler):
        code, out, _ = run_main(["import", "-c", 'CMD ["sh"]', "-m", "msg", str(tarball), "bb:v1"], capsys)
    assert (code, out) == (0, "sha256:abc\n")
    req = handler.req
    assert req.headers["transfer-encoding"] == "chunked" and req.body == tarball.read_bytes()
    assert req.query == {"changes": 'CMD ["sh"]', "fromSrc": "-", "message": "msg", "repo": "bb:v1"}


def test_progress_error_stops_with_message(sock_path, capsys):
    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        reply.begin_chunked()
        reply.chunk(b'{"errorDetail":{"message":"bad tar"},"error":"bad tar"}\r\n')
        return reply.end_chunked()

    with FakeDaemon(sock_path, handler):
        code, _, err = run_main(["import", "/dev/null"], capsys)
    assert (code, err) == (1, "bad tar\n")


def test_jobs_table(sock_path, capsys):
    jobs = [
        {
            "ID": "j1abcdefabcdef99",
            "Name": "container.create",
            "Status": "ok",
            "Args": ["x"],
            "StartedAt": "2026-11-28T05:00:00.1Z",
            "DurationMs": 12.5,
            "Error": "",
        },
        {
            "ID": "j2",
            "Name": "container.start",
            "Status": "error",
            "Args": [],
            "StartedAt": "2026-11-28T05:00:01Z",
            "DurationMs": 3.0,
            "Error": "no such file",
        },
        {
            "ID": "j3",
            "Name": "serveapi",
            "Status": "running",
            "Args": [],
            "StartedAt": "2026-11-28T04:00:00Z",
            "DurationMs": None,
            "Error": "",
        },
    ]

    def handler(req, reply):
        handler.target = req.target
        reply.json(200, jobs)

    with FakeDaemon(sock_path, handler):
        code, out, _ = run_main(["jobs"], capsys)
    assert handler.target == "/berth/v1/jobs?all=0"
    assert code == 0
    # an empty last column still pads the cells before it, as Go's tabwriter does
    assert out.splitlines() == [
        "ID             NAME               STATUS    DURATION   ERROR",
        "j3             serveapi           running   -          ",
        "j1abcdefabcd   container.create   ok        12.5ms     ",
        "j2             container.start    error     3ms        no such file",
    ]


def test_rmi_reports_each_failure(sock_path, capsys):
    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route == "/images/me/bb:v1":
            return reply.json(200, [{"Untagged": "me/bb:v1"}, {"Deleted": "sha256:1"}])
        return reply.error(404, "No such image: nosuch:latest")

    with FakeDaemon(sock_path, handler):
        code, out, err = run_main(["rmi", "me/bb:v1", "nosuch"], capsys)
    assert code == 1
    assert out == "Untagged: me/bb:v1\nDeleted: sha256:1\n"
    assert err == "Error response from daemon: No such image: nosuch:latest\n"


def test_pull_renders_progress_without_bars(sock_path, capsys):
    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        handler.query = req.query
        reply.begin_chunked()
        for line in (
            b'{"status":"Pulling from library/busybox","id":"latest"}',
            b'{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"ab57a5e6cdb4"}',
            b'{"status":"Pull complete","progressDetail":{},"id":"ab57a5e6cdb4"}',
            b'{"status":"Digest: sha256:8c11"}',
        ):
            reply.chunk(line + b"\r\n")
        return reply.end_chunked()

    with FakeDaemon(sock_path, handler):
        code, out, _ = run_main(["pull", "busybox"], capsys)
    assert code == 0 and handler.query == {"fromImage": "docker.io/library/busybox", "tag": "latest"}
    assert out.splitlines() == [
        "Using default tag: latest",
        "latest: Pulling from library/busybox",
        "ab57a5e6cdb4: Pull complete",
        "Digest: sha256:8c11",
        "docker.io/library/busybox:latest",
    ]


@pytest.mark.parametrize(
    ("argv", "route", "query", "out"),
    [
        (["stop", "-t", "2", "web"], "POST /containers/web/stop", {"t": "2"}, "web\n"),
        (["stop", "web"], "POST /containers/web/stop", {}, "web\n"),
        (["kill", "-s", "USR1", "web"], "POST /containers/web/kill", {"signal": "USR1"}, "web\n"),
        (["kill", "web"], "POST /containers/web/kill", {}, "web\n"),
        (["restart", "-t", "1", "web"], "POST /containers/web/restart", {"t": "1"}, "web\n"),
        (["pause", "web"], "POST /containers/web/pause", {}, "web\n"),
        (["unpause", "web"], "POST /containers/web/unpause", {}, "web\n"),
        (["rename", "web", "web2"], "POST /containers/web/rename", {"name": "web2"}, ""),
        (["rm", "-f", "-v", "web"], "DELETE /containers/web", {"force": "1", "v": "1"}, "web\n"),
        (["start", "web"], "POST /containers/web/start", {}, "web\n"),
        (
            ["tag", "busybox", "me/bb:v1"],
            "POST /images/busybox/tag",
            {"repo": "docker.io/me/bb", "tag": "v1"},
            "",
        ),
        (
            ["tag", "busybox", "127.0.0.1:5000/bb"],
            "POST /images/busybox/tag",
            {"repo": "127.0.0.1:5000/bb", "tag": "latest"},
            "",
        ),
        (["rmi", "-f", "me/bb:v1"], "DELETE /images/me/bb:v1", {"force": "1"}, ""),
        (
            ["images", "-a", "busy*"],
            "GET /images/json",
            {"all": "1", "filters": '{"reference":{"busy*":true}}'},
            None,
        ),
        (["ps", "-n", "2", "-s"], "GET /containers/json", {"limit": "2", "size": "1"}, None),
        (["ps", "-l"], "GET /containers/json", {"limit": "1"}, None),
        (["top", "web", "aux"], "GET /containers/web/top", {"ps_args": "aux"}, None),
    ],
)
def test_simple_commands_send_dockers_requests(sock_path, capsys, argv, route, query, out):
    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route in ("/containers/json", "/images/json"):
            return reply.json(200, [])
        if req.route.endswith("/top"):
            return reply.json(200, {"Titles": ["PID", "CMD"], "Processes": [["1", "sleep"]]})
        if req.method == "DELETE" and req.route.startswith("/images/"):
            return reply.json(200, [])
        if req.route.endswith("/tag"):
            return reply.send(201, b"")
        return reply.send(204)

    with FakeDaemon(sock_path, handler) as daemon:
        code, got_out, err = run_main(argv, capsys)
    assert (code, err) == (0, "")
    req = daemon.requests[-1]
    assert f"{req.method} {req.route}" == route
    assert req.query == query
    if out is not None:
        assert got_out == out


def test_wait_prints_status_and_exits_zero(sock_path, capsys):
    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        reply.begin_chunked()
        reply.chunk(b'{"Error":null,"StatusCode":4}\n')
        return reply.end_chunked()

    with FakeDaemon(sock_path, handler) as daemon:
        code, out, _ = run_main(["wait", "web"], capsys)
    assert (code, out) == (0, "4\n")
    assert daemon.requests[-1].query == {}


def test_start_attach_streams_and_exits_with_status(sock_path, capsys):
    engine = Engine(exit_code=2, out=b"started\n")

    def handler(req, reply):
        if req.route == "/containers/starta/json":
            return reply.json(200, {"Id": CID, "Config": {"Tty": False, "OpenStdin": False}})
        return engine(req, reply)

    with FakeDaemon(sock_path, handler) as daemon:
        code, out, _ = run_main(["start", "-a", "starta"], capsys)
    assert (code, out) == (2, "started\n")
    assert [r for r in daemon.routes() if r != "HEAD /_ping"] == [
        "GET /containers/starta/json",
        f"POST /containers/{CID}/attach",
        f"POST /containers/{CID}/wait",
        f"POST /containers/{CID}/start",
    ]


def test_exec_interactive_forwards_stdin(sock_path, capsys, monkeypatch):
    eid = "f" * 64
    got = {}

    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route == "/containers/web/json":
            return reply.json(200, {"Id": CID})
        if req.route == "/containers/web/exec":
            got["body"] = req.json()
            return reply.json(201, {"Id": eid})
        if req.route == f"/exec/{eid}/start":
            sock = reply.upgrade()
            got["stdin"] = reply.read_stdin()
            sock.sendall(frame(1, got["stdin"].upper()))
            sock.shutdown(2)
            return None
        return reply.json(200, {"Running": False, "ExitCode": 0})

    with FakeDaemon(sock_path, handler):
        code, out, _ = run_main(["exec", "-i", "web", "cat"], capsys, b"hello\n", monkeypatch)
    assert (code, out, got["stdin"]) == (0, "HELLO\n", b"hello\n")
    assert got["body"]["AttachStdin"] is True and got["body"]["Tty"] is False


def _all_command_paths():
    from berth.cli.main import COMMANDS

    for name, entry in COMMANDS.items():
        if isinstance(entry, dict):
            yield from ([name, sub] for sub in entry)
        else:
            yield [name]


@pytest.mark.parametrize("path", list(_all_command_paths()), ids=" ".join)
def test_every_command_has_help(capsys, path):
    code, out, err = run_main([*path, "--help"], capsys)
    assert code == 0 and err == ""
    assert "Usage:" in out


def test_diff_commit_history_prune(sock_path, capsys, monkeypatch):
    import time

    def handler(req, reply):
        route = req.route
        if route == "/_ping":
            return reply.send(200, b"OK")
        if route == "/containers/c1/changes":
            return reply.json(
                200,
                [{"Path": "/root", "Kind": 1}, {"Path": "/bin", "Kind": 0}, {"Path": "/bin/ls", "Kind": 2}],
            )
        if route == "/commit":
            handler.commit = req.query_lists
            return reply.json(201, {"Id": "sha256:abc"})
        if route == "/images/x:1/history":
            return reply.json(
                200,
                [
                    {
                        "Id": "sha256:" + "1" * 64,
                        "Created": int(time.time()) - 30,
                        "CreatedBy": "/bin/sh -c #(nop)  ENV FOO=bar",
                        "Size": 0,
                        "Comment": "",
                    },
                    {
                        "Id": "<missing>",
                        "Created": int(time.time()) - 30,
                        "CreatedBy": "x" * 50,
                        "Size": 1982354,
                        "Comment": "Imported from -",
                    },
                ],
            )
        if route == "/containers/prune":
            handler.prune = req.query
            return reply.json(200, {"ContainersDeleted": ["c" * 64], "SpaceReclaimed": 0})
        return reply.error(404, "page not found")

    with FakeDaemon(sock_path, handler):
        assert run_main(["diff", "c1"], capsys)[:2] == (0, "A /root\nC /bin\nD /bin/ls\n")
        assert run_main(["commit", "-m", "msg", "-c", "ENV Z=1", "c1", "spycommit:1"], capsys)[:2] == (
            0,
            "sha256:abc\n",
        )
        assert handler.commit == {
            "author": [""],
            "changes": ["ENV Z=1"],
            "comment": ["msg"],
            "container": ["c1"],
            "repo": ["docker.io/library/spycommit"],
            "tag": ["1"],
        }
        code, out, _ = run_main(["history", "x:1"], capsys)
        assert code == 0 and out.splitlines() == [
            "IMAGE          CREATED          CREATED BY                                      SIZE      COMMENT",
            "111111111111   30 seconds ago   /bin/sh -c #(nop)  ENV FOO=bar                  0B        ",
            "<missing>      30 seconds ago   xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…   1.98MB    Imported from -",
        ]
        code, out, _ = run_main(["container", "prune", "-f", "--filter", "label=a=b"], capsys)
        assert (code, out) == (0, f"Deleted Containers:\n{'c' * 64}\n\nTotal reclaimed space: 0B\n")
        assert handler.prune == {"filters": '{"label":{"a=b":true}}'}


def test_port_lists_and_picks_mappings(sock_path, capsys):
    ports = {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "::1", "HostPort": "5353"}],
        "90/tcp": None,
    }

    def handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        return reply.json(200, {"Id": CID, "NetworkSettings": {"Ports": ports}})

    with FakeDaemon(sock_path, handler):
        assert run_main(["port", "web"], capsys)[:2] == (
            0,
            "53/udp -> [::1]:5353\n80/tcp -> 127.0.0.1:8080\n",
        )
        assert run_main(["port", "web", "80"], capsys)[:2] == (0, "127.0.0.1:8080\n")
        code, _, err = run_main(["port", "web", "90"], capsys)
        assert (code, err) == (1, "Error: No public port '90' published for web\n")


def test_help_gives_every_command_its_line(capsys):
    from berth.cli.main import COMMANDS, DESCRIPTIONS, _group_usage

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, entry in COMMANDS.items():
        assert name in DESCRIPTIONS, f"berth {name} has no line in berth --help"
        assert f"  {name:<11} {DESCRIPTIONS[name]}\n" in out
        if isinstance(entry, dict):
            text = _group_usage(name, entry)
            for sub in entry:
                line = next(line for line in text.splitlines() if line.startswith(f"  {sub} ") or line == f"  {sub}")
                assert len(line.split(None, 1)) == 2, f"berth {name} {sub} has no description"
