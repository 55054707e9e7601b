#!/usr/bin/env bash
# Benchmark the committed HEAD (not the working tree, which may hold half-done edits) and write
# the result to docs/benchmarks.md of this checkout.
#
#   bash bench/record.sh [bench/run.py options, e.g. --quick]
#
# Clones HEAD into a temporary directory, sets it up there (its own .venv), runs bench/run.py in
# it, copies its docs/benchmarks.md back, and removes the clone.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /tmp/berth-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

git clone -q "$repo" "$work/berth"
echo "record: benchmarking $(git -C "$work/berth" log --oneline -1)"
bash "$work/berth/scripts/setup.sh" --with-reference
cd "$work/berth"
BERTH_BENCH_VIA="bash bench/record.sh${*:+ $*}" .venv/bin/python bench/run.py "$@"
cp docs/benchmarks.md "$repo/docs/benchmarks.md"
echo "record: wrote $repo/docs/benchmarks.md"
