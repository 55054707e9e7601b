#!/usr/bin/env bash
# The whole check, as CI runs it: setup, lint, import contracts, then every test tier.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -m unit -x      # extra arguments go to pytest
#
# Exit status is non-zero if any step fails; pytest's "no tests collected" (5) counts as a failure.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# --with-reference: conformance tests compare berthd with Debian's dockerd 20.10.
bash scripts/setup.sh --with-reference || exit $?
venv="$repo/.venv"
export PATH="$venv/bin:$PATH"

status=0
step() {
    local name=$1; shift
    echo "== $name"
    if "$@"; then
        echo "== $name: ok"
    else
        local rc=$?
        echo "== $name: FAILED (exit $rc)"
        status=1
    fi
}

step "ruff check" "$venv/bin/ruff" check -q src tests bench
step "lint-imports" "$venv/bin/lint-imports" --no-cache
step "mypy" "$venv/bin/mypy" src

echo "== pytest"
# Test paths given on the command line replace the default `tests`.
targets=(tests)
for arg in "$@"; do
    if [[ "$arg" != -* && ( -e "${arg%%::*}" ) ]]; then
        targets=()
        break
    fi
done
log=$(mktemp /tmp/berth-pytest.XXXXXX.log)
# -rfEs: list failures, errors and every skip with its reason at the end.
"$venv/bin/python" -m pytest -p no:cacheprovider -rfEs --durations=15 "${targets[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '(passed|failed|error|errors|skipped|deselected|no tests ran).* in [0-9.]+s' "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
rm -f "$log"
case "$rc" in
    0) echo "== pytest: ok: $summary" ;;
    5) echo "== pytest: FAILED: no tests were collected"; status=1 ;;
    *) echo "== pytest: FAILED (exit $rc): ${summary:-no summary line}"; status=1 ;;
esac

if [ "$status" = 0 ]; then
    echo "test.sh: all checks passed"
else
    echo "test.sh: FAILED"
fi
exit "$status"
