#!/usr/bin/env bash
# Idempotent setup for a Debian 12 machine, as root, with only package registries reachable.
#
#   bash scripts/setup.sh                   # system packages + <repo>/.venv with berth installed editable
#   bash scripts/setup.sh --with-reference  # also Debian's docker.io (dockerd 20.10), for bench/
#
# System packages: busybox-static (the offline base image), runc (the oci exec driver),
# nftables and iproute2 (the network driver), skopeo and docker-registry (the CNCF registry:
# independent registry clients and a peer server for the registry tests), openssl (test certificates),
# gcc and libc6-dev (the seccomp tests build a small static syscall probe), mmdebstrap (`berth image
# bootstrap debian`), docker-compose (compose 1.29, a real client of the network API); with
# --with-reference also apache2-utils (ab, the load generator of bench/network.py), podman (4.3, which
# runs containers through berth-runtime in tests/integration/test_podman_runtime.py) and crun (the
# fast OCI runtime bench/runtime.py compares with).
# Output is quiet; errors are shown in full.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
with_reference=0
for arg in "$@"; do
    case "$arg" in
        --with-reference) with_reference=1 ;;
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf 'setup: %s\n' "$*"; }

# run CMD... quietly; on failure print its output and fail
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "setup.sh: failed: $*" >&2
        return 1
    fi
}

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (apt-get install, and berth itself needs root)" >&2
    exit 1
fi

# --- system packages --------------------------------------------------------------------------
pkgs=(busybox-static runc nftables iproute2 util-linux skopeo docker-registry openssl gcc libc6-dev mmdebstrap docker-compose)
[ "$with_reference" = 1 ] && pkgs+=(docker.io apache2-utils podman crun)

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
    pkgs+=(python3 python3-venv)
    python=/usr/bin/python3
elif ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    pkgs+=(python3-venv)   # Debian's python3 creates venvs only with python3-venv
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    log "apt-get install ${missing[*]}"
    quiet apt-get update -q
    # Installing docker.io must not start a host dockerd (it would create docker0 and iptables
    # rules on the host network). A policy-rc.d that answers 101 forbids service starts.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    rc=0
    quiet apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || exit "$rc"
fi

# --- the virtualenv at the repository root --------------------------------------------------------
venv="$repo/.venv"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup.sh: berth needs Python >= 3.11; $python is $("$python" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    quiet "$python" -m venv "$venv"
fi
# Reinstall only when pyproject.toml changed since the last successful install (or the entry
# points are missing), so repeated runs take a second.
stamp="$venv/.berth-setup-stamp"
want=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)
if [ ! -x "$venv/bin/berthd" ] || [ ! -x "$venv/bin/berth" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "pip install -e '.[test]' into $venv"
    quiet "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo[test]"
    echo "$want" >"$stamp"
fi
# Byte-compile berth's sources. The editable install leaves them uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set (it is on these machines) every `berth` command and every berthd
# start would compile them again: `berth ps` took ~120 ms instead of ~30 ms. Up-to-date files are
# skipped, so this costs little on a second run.
quiet "$venv/bin/python" -m compileall -q -j0 "$repo/src"
# berth-runtime is started for every operation on every container (podman's conmon runs it for
# create, start, state, kill, delete ...): its launcher starts Python without `site` (-S: no .pth
# processing, no _distutils_hack) and isolated (-I), without the cyclic garbage collector, and
# imports the entry point directly, not through pip's wrapper (which imports re): ~10 ms less CPU
# per command (bench/runtime.py).
# Where the venv's Python is a shared-library build (pyenv's: libpython3.X.so, whose relocations
# and position-independent code cost a run ~3 ms of CPU) and the system has the same Python
# version built as one static executable (Debian's /usr/bin/python3.X), the launcher runs on that
# one: berth-runtime needs nothing but the standard library and berth's own sources (-I -S).
berth_src=$("$venv/bin/python" -c 'import berth, os; print(os.path.dirname(os.path.dirname(berth.__file__)))')
runtime_python="$venv/bin/python"
shared_check='import sys; sys.exit(0 if "/libpython" in open("/proc/self/maps").read() else 1)'
venv_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
system_python="/usr/bin/python$venv_version"
if "$venv/bin/python" -c "$shared_check" && [ -x "$system_python" ] \
    && [ "$("$system_python" -IS -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$venv_version" ] \
    && ! "$system_python" -I -c "$shared_check" \
    && "$system_python" -IS -c "import sys; sys.path.insert(0, '$berth_src'); import _ctypes, _json, _socket, _sha256, fcntl, resource, berth.runtime.cli" 2>/dev/null; then
    runtime_python="$system_python"
fi
# create and run also skip the import machinery: the compiled code of the ~40 modules they import,
# in the order their imports finish, in one file run by berth.runtime.preload (~1.4 ms of CPU of
# ~25 per run; a source changed since this was written, or a file not ours, and the command
# imports as usual: run setup.sh again after editing them).
preload_file="$venv/lib/berth-runtime.preload"
if ! "$runtime_python" -I -S -c "import sys; sys.path.insert(0, '$berth_src'); from berth.runtime.preload import build; build('$preload_file', '$berth_src')" >/dev/null; then
    echo "setup.sh: berth-runtime's preload file could not be written (it runs without it)" >&2
    rm -f "$preload_file"
fi
launcher="#!$runtime_python -IS
# berth-runtime's fast launcher, written by scripts/setup.sh (pip's wrapper imports re and site);
# a short-lived command needs no cyclic garbage collector
import gc
gc.disable()
import sys
sys.path.insert(0, '$berth_src')
from berth.runtime.preload import preload
preload('$preload_file', sys.argv)
from berth.runtime.cli import run
run()"
if [ "$(cat "$venv/bin/berth-runtime" 2>/dev/null)" != "$launcher" ]; then
    printf '%s\n' "$launcher" >"$venv/bin/berth-runtime.tmp"
    chmod 755 "$venv/bin/berth-runtime.tmp"
    mv "$venv/bin/berth-runtime.tmp" "$venv/bin/berth-runtime"
fi
# berth-init, the init `docker run --init` runs as PID 1 (a static binary: the container's root
# file system may have no libc). Rebuilt when its source is newer than the binary.
if [ ! -x "$venv/bin/berth-init" ] || [ "$repo/csrc/berth-init.c" -nt "$venv/bin/berth-init" ]; then
    quiet gcc -static -O2 -s -Wall -o "$venv/bin/berth-init" "$repo/csrc/berth-init.c"
fi
for exe in berthd berth berth-runtime; do
    if [ ! -x "$venv/bin/$exe" ]; then
        echo "setup.sh: $venv/bin/$exe missing after install" >&2
        exit 1
    fi
done
log "ready: $venv/bin/berthd, $venv/bin/berth"
