"""``docker build`` (the classic builder) against a real berthd: the docker CLI 28 with
DOCKER_BUILDKIT=0 and on its default path, docker-py, and raw ``POST /build``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration

CLASSIC = {"DOCKER_BUILDKIT": "0"}


def write_context(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def build(d: harness.Daemon, ctx: Path, *args: str, classic: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**d.env, **(CLASSIC if classic else {})}
    return d.docker("build", *args, str(ctx), env=env, timeout=120)


def steps(stdout: str) -> list[str]:
    """The stream's lines with ids masked, what two daemons can be compared on."""
    out = []
    for line in stdout.splitlines():
        line = re.sub(r"\b[0-9a-f]{12}\b", "<id>", line)
        if line.startswith(" ---> Cache miss"):
            continue  # berth's own line
        out.append(line)
    return out


TRANSCRIPT = {
    ".dockerignore": "*.log\n",
    "junk.log": "ignored\n",
    "hello.txt": "hello from context\n",
    "Dockerfile": (
        'FROM busybox\nARG X=default\nRUN echo "built with X=$X" > /built.txt\nCOPY hello.txt /hello.txt\n'
        'ENV FOO=bar\nCMD ["cat", "/hello.txt"]\n'
    ),
}


def test_classic_build_stream_image_and_cache(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", TRANSCRIPT)
    r = build(berthd, ctx, "-t", "spybuild:1", "--build-arg", "X=42", "--label", "stage=test")
    assert r.returncode == 0, r.stderr + berthd.log_tail()
    lines = steps(r.stdout)
    assert lines[lines.index("Step 1/7 : FROM busybox"):] == [
        "Step 1/7 : FROM busybox", " ---> <id>",
        "Step 2/7 : ARG X=default", " ---> <id>",
        'Step 3/7 : RUN echo "built with X=$X" > /built.txt', " ---> Running in <id>",
        "Removing intermediate container <id>", " ---> <id>",
        "Step 4/7 : COPY hello.txt /hello.txt", " ---> <id>",
        "Step 5/7 : ENV FOO=bar", " ---> <id>",
        'Step 6/7 : CMD ["cat", "/hello.txt"]', " ---> <id>",
        "Step 7/7 : LABEL stage=test", " ---> <id>",
        "Successfully built <id>", "Successfully tagged spybuild:1",
    ]
    assert "BuildKit is currently disabled" in r.stderr
    run = berthd.docker("run", "--rm", "spybuild:1")
    assert run.stdout == "hello from context\n", run.stderr
    assert berthd.docker("run", "--rm", "spybuild:1", "cat", "/built.txt").stdout == "built with X=42\n"
    assert berthd.docker("run", "--rm", "spybuild:1", "ls", "/").stdout.count("junk.log") == 0
    info = json.loads(berthd.docker("image", "inspect", "spybuild:1").stdout)[0]
    assert info["Config"]["Cmd"] == ["cat", "/hello.txt"]
    assert info["Config"]["Labels"] == {"stage": "test"}
    assert "FOO=bar" in info["Config"]["Env"] and any(e.startswith("PATH=") for e in info["Config"]["Env"])
    history = berthd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "spybuild:1").stdout.splitlines()
    assert history[:6] == [
        "/bin/sh -c #(nop)  LABEL stage=test",
        '/bin/sh -c #(nop)  CMD ["cat" "/hello.txt"]',
        "/bin/sh -c #(nop)  ENV FOO=bar",
        history[3],
        '|1 X=42 /bin/sh -c echo "built with X=$X" > /built.txt',
        "/bin/sh -c #(nop)  ARG X=default",
    ]
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /hello.txt ", history[3])
    # no intermediate container is left
    assert berthd.docker("ps", "-aq").stdout == ""

    again = build(berthd, ctx, "-t", "spybuild:1", "--build-arg", "X=42", "--label", "stage=test")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" ---> Using cache") == 6 and "Running in" not in again.stdout
    assert again.stdout.splitlines()[-2] == r.stdout.splitlines()[-2]  # the same image

    changed_arg = build(berthd, ctx, "--build-arg", "X=43")
    assert " ---> Cache miss: build argument X changed ('42' -> '43')" in changed_arg.stdout
    assert changed_arg.stdout.count("Using cache") == 1  # ARG X=default still hits

    (ctx / "hello.txt").write_text("changed\n")
    changed_file = build(berthd, ctx, "--build-arg", "X=43")
    assert " ---> Cache miss: file hello.txt changed (content)" in changed_file.stdout
    assert changed_file.stdout.count("Using cache") == 2

    no_cache = build(berthd, ctx, "--no-cache", "--build-arg", "X=43")
    assert no_cache.returncode == 0 and "Using cache" not in no_cache.stdout and "Cache miss" not in no_cache.stdout


def test_default_path_quiet_iidfile_tags(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN touch /made\n"})
    iid = tmp_path / "iid"
    r = build(berthd, ctx, "-t", "one:1", "-t", "two", "--iidfile", str(iid), classic=False)
    assert r.returncode == 0, r.stderr + berthd.log_tail()
    assert "Install the buildx component" in r.stderr  # the CLI fell back to the classic builder
    image_id = iid.read_text().strip()
    assert image_id.startswith("sha256:")
    assert "Successfully tagged one:1" in r.stdout and "Successfully tagged two:latest" in r.stdout
    for ref in ("one:1", "two"):
        assert json.loads(berthd.docker("image", "inspect", ref).stdout)[0]["Id"] == image_id
    q = build(berthd, ctx, "-q", "--no-cache")
    assert q.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", q.stdout), q.stdout


def test_multistage_target_meta_args(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    dockerfile = (
        "ARG BASE=busybox\n"
        "FROM $BASE AS builder\n"
        "ARG BASE\n"
        "ARG SECRET\n"
        "RUN echo base=$BASE secret=$SECRET > /out && mkdir -p /dist && echo bin > /dist/app\n"
        "FROM busybox AS second\n"
        "RUN echo second > /second\n"
        "FROM busybox\n"
        "COPY --from=builder /out /from-name\n"
        "COPY --from=0 /dist/ /opt/\n"
        "COPY --from=second /second /second\n"
        "RUN echo base=$BASE > /final\n"
    )
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    r = build(berthd, ctx, "-t", "ms:final", "--build-arg", "SECRET=s3", "--build-arg", "UNUSED=1",
              "--build-arg", "HTTP_PROXY=http://127.0.0.1:9")
    assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in r.stdout  # proxies are exempt
    assert "Step 1/12 : ARG BASE=busybox" in r.stdout and "Step 12/12" in r.stdout
    out = berthd.docker("run", "--rm", "ms:final", "cat", "/from-name", "/opt/app", "/second", "/final").stdout
    assert out == "base=busybox secret=s3\nbin\nsecond\nbase=\n"  # meta args need an ARG in the stage
    t = build(berthd, ctx, "-t", "ms:second", "--target", "second")
    assert t.returncode == 0 and "Step 7/7" in t.stdout and "Step 8" not in t.stdout
    assert berthd.docker("run", "--rm", "ms:second", "cat", "/second").stdout == "second\n"
    bad = build(berthd, ctx, "--target", "nosuch")
    assert bad.returncode == 1
    assert "Error response from daemon: failed to reach build target nosuch in Dockerfile" in bad.stderr


def test_copy_add_ownership_modes_wildcards_dockerignore(berthd: harness.Berthd, busybox_image: str,
                                                         tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/data.txt")
        info.size, info.uid, info.gid, info.mode = 4, 7, 8, 0o600
        tar.addfile(info, io.BytesIO(b"data"))
    files: dict[str, str | bytes] = {
        "Dockerfile": (
            "FROM busybox\n"
            "COPY --chown=1000:wheel a.txt /own/\n"
            "COPY --chown=nobody:nogroup --chmod=700 a.txt /own/named\n"
            "COPY --chmod=600 *.md /docs/\n"
            "COPY dir /copied\n"
            "ADD bundle.tgz /unpacked\n"
            "COPY bundle.tgz /kept.tgz\n"
            "WORKDIR /w\n"
            "COPY a.txt rel\n"
            "COPY <<EOF /heredoc.txt\n"
            "home is $HOME_DIR\n"
            "EOF\n"
        ),
        ".dockerignore": "secret*\ndir/skip\n!dir/skip/keep\n",
        "a.txt": "a\n",
        "one.md": "1\n",
        "two.md": "2\n",
        "secret.key": "no\n",
        "dir/x": "x\n",
        "dir/skip/y": "y\n",
        "dir/skip/keep": "k\n",
        "bundle.tgz": buf.getvalue(),
    }
    ctx = write_context(tmp_path / "ctx", files)
    os.chmod(ctx / "a.txt", 0o640)
    r = build(berthd, ctx, "-t", "cp:1")
    assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
    script = (
        "stat -c '%n %u:%g %a' /own/a.txt /own/named /docs/one.md /docs/two.md /copied/x /copied/skip/keep "
        "/unpacked/pkg/data.txt /kept.tgz /w/rel; ls /copied/skip; ls / | grep -c secret; cat /heredoc.txt"
    )
    out = berthd.docker("run", "--rm", "cp:1", "sh", "-c", script).stdout
    assert out.splitlines() == [
        "/own/a.txt 1000:10 640",
        "/own/named 65534:65534 700",
        "/docs/one.md 0:0 600",
        "/docs/two.md 0:0 600",
        "/copied/x 0:0 644",
        "/copied/skip/keep 0:0 644",
        "/unpacked/pkg/data.txt 7:8 600",  # ADD keeps the archive's owners
        "/kept.tgz 0:0 644",
        "/w/rel 0:0 640",
        "keep",  # dir/skip/y was left out by .dockerignore, keep re-included
        "0",
        "home is ",
    ]


def test_dockerfile_from_stdin_and_context_from_stdin(berthd: harness.Berthd, busybox_image: str,
                                                       tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"data.txt": "ctx data\n"})
    env = {**berthd.env, **CLASSIC}
    r = berthd.docker("build", "-t", "stdin:1", "-f", "-", str(ctx), input="FROM busybox\nCOPY data.txt /\n",
                      env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
    assert berthd.docker("run", "--rm", "stdin:1", "cat", "/data.txt").stdout == "ctx data\n"
    r = berthd.docker("build", "-t", "stdin:2", "-", input="FROM busybox\nRUN echo no context > /f\n", env=env,
                      timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert berthd.docker("run", "--rm", "stdin:2", "cat", "/f").stdout == "no context\n"


def test_failing_run_and_intermediate_containers(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": 'FROM busybox\nRUN echo "visible output line" && echo "to stderr" >&2\nRUN exit 3\n',
    })
    r = build(berthd, ctx, "-t", "fail:1")
    assert r.returncode == 3
    assert "visible output line\n\x1b[91mto stderr\n\x1b[0m" in r.stdout
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in r.stderr
    kept = berthd.docker("ps", "-a", "--format", "{{.Status}}").stdout.splitlines()
    assert len(kept) == 1 and kept[0].startswith("Exited (3)")  # dockerd keeps the failed one
    berthd.docker("rm", "-f", berthd.docker("ps", "-aq").stdout.strip())
    forced = build(berthd, ctx, "--force-rm")
    assert forced.returncode == 3 and berthd.docker("ps", "-aq").stdout == ""
    ok = write_context(tmp_path / "ok", {"Dockerfile": "FROM busybox\nRUN true\nRUN true\n"})
    keep = build(berthd, ok, "--rm=false", "--no-cache")
    assert keep.returncode == 0 and "Removing intermediate container" not in keep.stdout
    assert len(berthd.docker("ps", "-aq").stdout.split()) == 2


def test_bad_input(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    cases = {
        "FROM busybox\n\nRUNN echo\n": "dockerfile parse error line 3: unknown instruction: RUNN",
        "FROM busybox\nCOPY --chown a /b\n": "dockerfile parse error line 2: COPY: Missing a value on flag: chown",
        "FROM busybox\nENV a=1 b\n": "dockerfile parse error line 2: ENV: Syntax error - can't find = in \"b\"",
        "RUN true\n": "dockerfile parse error line 1: RUN: no build stage in current context",
    }
    for text, message in cases.items():
        ctx = write_context(tmp_path / f"c{len(text)}", {"Dockerfile": text})
        r = build(berthd, ctx)
        assert r.returncode == 1 and f"Error response from daemon: {message}" in r.stderr, r.stderr
    ctx = write_context(tmp_path / "links", {"Dockerfile": "FROM busybox\nCOPY out /x\n"})
    os.symlink("/etc/passwd", ctx / "out")
    r = build(berthd, ctx)
    assert r.returncode == 1
    assert "COPY failed: file not found in build context or excluded by .dockerignore: stat out" in r.stderr
    # raw API: a body that is not a tar, a path out of the context, a Dockerfile out of it
    status, body = raw_build(berthd.sock, "", b"plain text, not a tar" * 40)
    assert status == 400 and "not a tar archive" in body["message"]
    status, stream = raw_build(berthd.sock, "", tar_of({"Dockerfile": b"FROM busybox\nCOPY ../x /x\n"}))
    assert status == 200 and "COPY failed: forbidden path outside the build context: ../x ()" in stream
    status, body = raw_build(berthd.sock, "dockerfile=../Dockerfile", tar_of({"Dockerfile": b"FROM busybox\n"}))
    assert status == 400 and "forbidden path outside the build context" in body["message"]
    status, body = raw_build(berthd.sock, "", tar_of({"Dockerfile": b"FROM busybox\n", "../evil": b"x"}))
    assert status == 400 and "points outside the context" in body["message"]
    ctx = write_context(tmp_path / "dirlink", {"Dockerfile": "FROM busybox\nCOPY conf/passwd /x\n"})
    os.symlink("/etc", ctx / "conf")  # a directory link out of the context: resolved inside it
    r = build(berthd, ctx)
    assert r.returncode == 1 and "file not found in build context" in r.stderr, r.stderr
    status, body = raw_build(berthd.sock, "", tar_of({"other": b"x"}))
    assert status == 400 and body["message"] == "Cannot locate specified Dockerfile: Dockerfile"
    assert berthd.docker("ps", "-aq").stdout == ""
    assert not list((berthd.data_root / "tmp").iterdir())  # spools and layer files are gone


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def raw_build(sock: str, query: str, body: bytes) -> tuple[int, object]:
    conn = harness.UnixHTTPConnection(sock, timeout=120)
    try:
        conn.request("POST", "/v1.45/build?" + query, body=body, headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        data = resp.read().decode()
    finally:
        conn.close()
    if resp.status == 200:
        return resp.status, data
    return resp.status, json.loads(data)


def test_dockerpy_build(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    pytest.importorskip("docker", reason="docker-py is installed by scripts/setup.sh")
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG V\nRUN echo v=$V > /v\nCMD cat /v\n",
                                           ".dockerignore": "big\n", "big": "x" * 1000})
    client = berthd.client()
    image, logs = client.images.build(path=str(ctx), tag="py:1", buildargs={"V": "7"}, rm=True)
    assert "py:1" in image.tags
    assert any("Successfully built" in chunk.get("stream", "") for chunk in logs)
    assert client.containers.run("py:1", remove=True) == b"v=7\n"
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 4\n")
    # the low-level call, read to the end (images.build raises before the stream is drained)
    chunks = list(client.api.build(path=str(ctx), decode=True))
    assert chunks[-1]["errorDetail"] == {"code": 4, "message": "The command '/bin/sh -c exit 4' returned a non-zero code: 4"}


def test_rmi_parent_with_children_is_refused(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV A=1\nENV B=2\n"})
    r = build(berthd, ctx, "-t", "child:1")
    assert r.returncode == 0
    info = json.loads(berthd.docker("image", "inspect", "child:1").stdout)[0]
    parent = info["Parent"]
    assert parent.startswith("sha256:")
    short = parent.removeprefix("sha256:")[:12]
    assert short not in berthd.docker("images", "--format", "{{.ID}}").stdout  # intermediate images are hidden
    assert short in berthd.docker("images", "-a", "--format", "{{.ID}}").stdout
    for args in (("rmi", parent), ("rmi", "-f", parent)):
        r = berthd.docker(*args)
        assert r.returncode == 1 and "image has dependent child images" in r.stderr, r.stderr
    assert berthd.docker("rmi", "child:1").returncode == 0
    assert berthd.docker("image", "inspect", parent).returncode == 1  # untagged parents went with it


def test_instructions_heredoc_onbuild_shell_healthcheck(berthd: harness.Berthd, busybox_image: str,
                                                        tmp_path: Path) -> None:
    base = write_context(tmp_path / "base", {"Dockerfile": (
        "FROM busybox\n"
        "ONBUILD RUN echo triggered > /tmp/trigger\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\n"
        "RUN <<EOF\n"
        "echo line1 > /heredoc\n"
        "echo line2 >> /heredoc\n"
        "EOF\n"
        "RUN cat <<'END' > /quoted\n"
        "$NOT_EXPANDED\n"
        "END\n"
        "HEALTHCHECK --interval=5s --retries=2 CMD [\"true\"]\n"
        "STOPSIGNAL SIGINT\n"
        "USER nobody\n"
        "EXPOSE 80 90/udp\n"
        "VOLUME /data\n"
        "ENTRYPOINT [\"sh\", \"-c\"]\n"
        "CMD [\"cat /heredoc /quoted\"]\n"
    )})
    r = build(berthd, base, "-t", "base:1")
    assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
    assert berthd.docker("run", "--rm", "base:1").stdout == "line1\nline2\n$NOT_EXPANDED\n"
    config = json.loads(berthd.docker("image", "inspect", "base:1").stdout)[0]["Config"]
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert (config["StopSignal"], config["User"], config["Volumes"]) == ("SIGINT", "nobody", {"/data": {}})
    assert config["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert config["Shell"] == ["/bin/sh", "-ec"] and config["OnBuild"] == ["RUN echo triggered > /tmp/trigger"]
    child = write_context(tmp_path / "child", {"Dockerfile": "FROM base:1\nRUN cat /tmp/trigger\n"})
    r = build(berthd, child, "-t", "child:1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# Executing 1 build trigger" in r.stdout
    assert json.loads(berthd.docker("image", "inspect", "child:1").stdout)[0]["Config"]["OnBuild"] is None
    assert berthd.docker("run", "--rm", "--entrypoint", "cat", "child:1", "/tmp/trigger").stdout == "triggered\n"


def test_build_steps_are_jobs_and_networks(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN cat /proc/net/dev > /ifaces\n"})
    r = build(berthd, ctx, "-t", "net:none", "--network", "none")
    assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
    ifaces = berthd.docker("run", "--rm", "net:none", "cat", "/ifaces").stdout
    assert "lo:" in ifaces and len(ifaces.splitlines()) == 3  # two header lines and lo
    host = build(berthd, ctx, "-t", "net:host", "--network", "host", "--no-cache")
    assert host.returncode == 0, host.stdout + host.stderr
    host_ifaces = berthd.docker("run", "--rm", "net:host", "cat", "/ifaces").stdout
    assert len(host_ifaces.splitlines()) > 3  # the host's interfaces, not only lo
    hosts = write_context(tmp_path / "hosts", {"Dockerfile": "FROM busybox\nRUN grep myhost /etc/hosts > /h\n"})
    r = build(berthd, hosts, "-t", "net:hosts", "--add-host", "myhost:10.9.8.7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert berthd.docker("run", "--rm", "net:hosts", "cat", "/h").stdout.split() == ["10.9.8.7", "myhost"]
    jobs = berthd.berth("jobs", "-a", "--format", "{{.Name}} {{.Args}}").stdout.splitlines()
    names = [j.split(" ", 1)[0] for j in jobs]
    assert "image.build" in names and names.count("build.step") >= 4
    assert any(j.startswith("image.build ") and '"tags":"net:none"' in j for j in jobs), jobs
    assert any("RUN cat /proc/net/dev" in j and '"step":"2/2"' in j for j in jobs), jobs
    assert {"container.create", "container.start", "container.wait", "image.commit"} <= set(names)


@pytest.mark.conformance
def test_same_stream_history_and_config_as_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                                   busybox_tar: Path, tmp_path: Path) -> None:
    files = {
        **TRANSCRIPT,
        "Dockerfile": TRANSCRIPT["Dockerfile"] + (
            "WORKDIR /app/sub\nUSER 1000\nEXPOSE 80\nVOLUME /data\nLABEL a=b\nENTRYPOINT [\"sh\"]\n"
            "STOPSIGNAL SIGINT\nONBUILD RUN true\n"
        ),
    }
    ctx = write_context(tmp_path / "ctx", files)
    results = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        r = build(d, ctx, "-t", "cmp:1", "--build-arg", "X=42", "--network", "none")
        assert r.returncode == 0, r.stdout + r.stderr
        info = json.loads(d.docker("image", "inspect", "cmp:1").stdout)[0]
        history = d.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "cmp:1").stdout
        results.append((steps(r.stdout), info, history))
    (b_steps, b_info, b_hist), (d_steps, d_info, d_hist) = results
    # dockerd runs a container for every metadata step; berth commits those without one
    d_steps = [line for line in d_steps if not line.startswith((" ---> Running in", "Removing intermediate"))
               or line in b_steps]
    assert [s for s in b_steps if s.startswith(("Step", "Success"))] == [
        s for s in d_steps if s.startswith(("Step", "Success"))]
    for key in ("Cmd", "Entrypoint", "Env", "User", "WorkingDir", "ExposedPorts", "Volumes", "Labels",
                "StopSignal", "OnBuild", "Healthcheck", "Shell"):
        assert b_info["Config"].get(key) == d_info["Config"].get(key), key
    mask = re.compile(r"file:[0-9a-f]{64}")
    b_lines = [mask.sub("file:<sha>", line.split("|")[0]) for line in b_hist.splitlines()]
    d_lines = [mask.sub("file:<sha>", line.split("|")[0]) for line in d_hist.splitlines()]
    assert b_lines[:-1] == d_lines[:-1]  # the base image's own line differs (import time)
    assert len(b_info["RootFS"]["Layers"]) == len(d_info["RootFS"]["Layers"])


def test_berth_cli_build(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nARG V\nCOPY . /ctx\nRUN echo v=$V > /v\n",
        ".dockerignore": "*.log\nsub\n!sub/keep\n",
        "a.txt": "a\n", "x.log": "no\n", "sub/drop": "no\n", "sub/keep": "yes\n",
    })
    iid = tmp_path / "iid"
    r = berthd.berth("build", "-t", "bc:1", "--build-arg", "V=5", "--iidfile", str(iid), str(ctx), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
    assert r.stdout.startswith("Sending build context to Docker daemon") and "Successfully tagged bc:1" in r.stdout
    image_id = iid.read_text()
    assert json.loads(berthd.docker("image", "inspect", "bc:1").stdout)[0]["Id"] == image_id
    listing = berthd.docker("run", "--rm", "bc:1", "sh", "-c", "cd /ctx && find . | sort; cat /v").stdout
    assert listing.split() == [".", "./.dockerignore", "./Dockerfile", "./a.txt", "./sub", "./sub/keep", "v=5"]
    q = berthd.berth("build", "-q", "-f", "-", str(ctx), input="FROM busybox\nCOPY a.txt /\n", timeout=120)
    assert q.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", q.stdout), q.stdout + q.stderr
    bad = berthd.berth("build", "-", input="FROM busybox\nRUN exit 6\n", timeout=120)
    assert bad.returncode == 6 and "returned a non-zero code: 6" in bad.stderr
    syntax = berthd.berth("build", "-", input="FROM busybox\nNOPE x\n", timeout=120)
    assert syntax.returncode == 1
    assert "Error response from daemon: dockerfile parse error line 2: unknown instruction: NOPE" in syntax.stderr
    pruned = berthd.berth("builder", "prune", "-f")
    assert pruned.returncode == 0 and "Total reclaimed space" in pruned.stdout
    again = berthd.berth("build", "--build-arg", "V=5", str(ctx), timeout=120)
    assert "Using cache" not in again.stdout  # the cache was emptied


def test_from_pulls_missing_bases_and_pull_flag(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    import bcrypt

    from registry_harness import BerthRegistry

    (tmp_path / "htpasswd").write_text(f"ann:{bcrypt.hashpw(b'pw1', bcrypt.gensalt(rounds=4)).decode()}\n")
    with BerthRegistry(tmp_path / "reg", "--auth", "token", "--htpasswd", str(tmp_path / "htpasswd")) as reg:
        cfg = tmp_path / "dockercfg"
        cfg.mkdir()
        env = {**berthd.env, "DOCKER_CONFIG": str(cfg), **CLASSIC}
        name = f"{reg.addr}/priv/base:1"
        assert berthd.docker("login", reg.addr, "-u", "ann", "--password-stdin", input="pw1\n", env=env).returncode == 0
        assert berthd.docker("tag", busybox_image, name).returncode == 0
        assert berthd.docker("push", name, env=env).returncode == 0
        assert berthd.docker("rmi", name).returncode == 0
        ctx = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {name}\nRUN echo pulled-base > /p\n"})
        # the base is missing: the build pulls it with the credentials the CLI sends (X-Registry-Config)
        r = berthd.docker("build", "-t", "pb:1", str(ctx), env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
        assert "1: Pulling from priv/base" in r.stdout and f"Status: Downloaded newer image for {name}" in r.stdout
        assert berthd.docker("run", "--rm", "pb:1", "cat", "/p").stdout == "pulled-base\n"
        # --pull asks the registry again even though the base is here
        r = berthd.docker("build", "--pull", "-t", "pb:1", str(ctx), env=env, timeout=120)
        assert r.returncode == 0 and f"Status: Image is up to date for {name}" in r.stdout, r.stdout + r.stderr
        assert "Using cache" in r.stdout
        # without credentials the pull is refused, in the stream
        anon = {**env, "DOCKER_CONFIG": str(tmp_path / "empty")}
        (tmp_path / "empty").mkdir()
        r = berthd.docker("build", "--pull", str(ctx), env=anon, timeout=120)
        assert r.returncode == 1 and "pull access denied" in r.stderr, r.stdout + r.stderr


def test_a_client_that_goes_away_stops_the_build(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN sleep 60\n"})
    cli = subprocess.Popen([harness.docker_cli() or "docker", "build", str(ctx)], env={**berthd.env, **CLASSIC},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.eventually(lambda: berthd.docker("ps", "-q").stdout.strip(), timeout=30)
    finally:
        cli.kill()
        cli.wait()
    # the RUN container is killed and removed, as dockerd cancels a build whose client left
    harness.eventually(lambda: berthd.docker("ps", "-aq").stdout == "", timeout=20)


def test_vfs_driver_and_cache_across_a_restart(berthd_factory: Any, busybox_tar: Path, tmp_path: Path) -> None:
    d = berthd_factory(storage_driver="vfs")
    d.import_image(busybox_tar)
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nWORKDIR /app\nCOPY . .\nRUN rm /bin/vi && echo built > built\nCMD cat built\n",
        "f.txt": "file\n",
    })
    r = build(d, ctx, "-t", "vfs:1")
    assert r.returncode == 0, r.stdout + r.stderr + d.log_tail()
    out = d.docker("run", "--rm", "vfs:1", "sh", "-c", "cat built f.txt; ls /bin/vi 2>&1 | wc -l").stdout
    assert out.startswith("built\nfile\n"), out
    assert d.docker("run", "--rm", "vfs:1", "test", "-e", "/bin/vi").returncode == 1  # the RUN's deletion holds
    d.restart()
    again = build(d, ctx, "-t", "vfs:1")
    assert again.returncode == 0 and again.stdout.count("Using cache") == 4, again.stdout


def test_add_from_a_url(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    import http.server
    import threading

    served = tmp_path / "served"
    (served / "files").mkdir(parents=True)
    (served / "files" / "remote.txt").write_text("from the web\n")
    (served / "files" / "bundle.tar").write_bytes(tar_of({"inner": b"x"}))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/files"
        ctx = write_context(tmp_path / "ctx", {"Dockerfile": (
            f"FROM busybox\nADD {base}/remote.txt /dl/\nADD {base}/bundle.tar /dl/kept.tar\n"
        )})
        r = build(berthd, ctx, "-t", "url:1")
        assert r.returncode == 0, r.stdout + r.stderr + berthd.log_tail()
        out = berthd.docker("run", "--rm", "url:1", "sh", "-c",
                            "cat /dl/remote.txt; stat -c '%a %u' /dl/remote.txt; ls /dl").stdout
        assert out.splitlines() == ["from the web", "600 0", "kept.tar", "remote.txt"]  # a tar is not unpacked
        missing = write_context(tmp_path / "missing", {"Dockerfile": f"FROM busybox\nADD {base}/nope.txt /\n"})
        r = build(berthd, missing)
        assert r.returncode == 1 and f"failed to GET {base}/nope.txt with status 404" in r.stderr, r.stderr
        copy_url = write_context(tmp_path / "copyurl", {"Dockerfile": f"FROM busybox\nCOPY {base}/remote.txt /\n"})
        r = build(berthd, copy_url)
        assert r.returncode == 1 and "source can't be a URL for COPY" in r.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert not list((berthd.data_root / "tmp").iterdir())
