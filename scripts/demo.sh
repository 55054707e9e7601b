#!/usr/bin/env bash
# A first look at berth: set up, start berthd, run a few containers with the berth CLI.
#
#   bash scripts/demo.sh
#
# berthd stays running afterwards (its pid and how to stop it are printed at the end).
# Override the locations with BERTH_DATA_ROOT, BERTH_EXEC_ROOT, BERTH_SOCK, BERTH_LOG.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup.sh"

venv="$repo/.venv"
data_root=${BERTH_DATA_ROOT:-/var/lib/berth}
exec_root=${BERTH_EXEC_ROOT:-/run/berth}
sock=${BERTH_SOCK:-$exec_root/berth.sock}
logfile=${BERTH_LOG:-/var/log/berthd.log}
pidfile=$exec_root/berthd.pid
export BERTH_HOST="unix://$sock"

ping_ok() {
    "$venv/bin/python" - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
except OSError:
    sys.exit(1)
sys.exit(0 if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] else 1)
PY
}

started=0
pid=""
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && ping_ok; then
    pid=$(cat "$pidfile")
    echo "demo: berthd already running (pid $pid) on $sock"
else
    mkdir -p "$data_root" "$exec_root" "$(dirname "$logfile")"
    echo "demo: starting berthd (log: $logfile)"
    setsid "$venv/bin/berthd" --data-root "$data_root" --exec-root "$exec_root" \
        -H "unix://$sock" --pidfile "$pidfile" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    started=1
    for _ in $(seq 1 300); do
        ping_ok && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "demo: berthd exited during start-up; last lines of $logfile:" >&2
            tail -n 30 "$logfile" >&2
            exit 1
        fi
        sleep 0.1
    done
    if ! ping_ok; then
        echo "demo: berthd did not answer /_ping within 30 s; last lines of $logfile:" >&2
        tail -n 30 "$logfile" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
fi

fail() {
    echo "demo: step failed: $*" >&2
    echo "demo: last lines of $logfile:" >&2
    tail -n 30 "$logfile" >&2
    echo "demo: berthd is still running as pid $pid; stop it with: kill $pid" >&2
    exit 1
}

berth() { "$venv/bin/berth" "$@"; }
show() {
    printf '$ berth'; printf " %q" "$@"; printf '\n'
    berth "$@" || fail "berth $*"
}

show image bootstrap busybox
show run --rm busybox echo hello from berth
berth rm -f demo >/dev/null 2>&1 || true   # a demo container left by an earlier, interrupted run
show run -d --name demo busybox sh -c 'while true; do date; sleep 1; done'
show ps
sleep 2
show logs demo
show rm -f demo

echo
if [ "$started" = 1 ]; then
    echo "demo: berthd is running as pid $pid (socket $sock, log $logfile)."
else
    echo "demo: berthd (pid $pid) was already running and is left as it was."
fi
echo "demo: try:   BERTH_HOST=unix://$sock $venv/bin/berth ps"
echo "demo:        DOCKER_HOST=unix://$sock docker run --rm busybox uname -a"
echo "demo: stop:  kill $pid"
