#!/usr/bin/env bash
# The load benchmark of `tarn serve` (issue 12): builds `tarn` and `tarn-bench` (with its
# `serve-load` binary) in release mode and runs serve-load on loopback. Per run, on a fresh
# lake and server: 16 readers of GET /api/v1/data alone (idle, 20 s), then the same readers
# next to a writer at 10 commits/s through POST /api/v1/write and an SSE subscriber (load,
# 60 s); 3 runs. Prints a Markdown table (each run, the median of the runs, the verdicts)
# and writes the raw figures to bench/results/serve-load-<UTC time>.jsonl (git-ignored).
#
#   bench/serve_load.sh                       the full benchmark (~5 minutes after the build)
#   bench/serve_load.sh --smoke               1 run, 4 readers, 3 s idle, 5 s load (a check)
#   bench/serve_load.sh -- --readers 8 ...    more serve-load flags (serve-load --help)
#
# Exits 0 when the targets hold on the median of the runs (errors = 0, reader p99 under
# load <= 2x idle, commit-to-notification p99 <= 50 ms), 1 otherwise.
#   CARGO_TARGET_DIR         as for cargo        ($HOME/.cache/tarn-target, as .ci/run)
#   TARN_BENCH_WORK          scratch directory   (bench/data/serve-load)
#   TARN_BENCH_RESULTS       results directory   (bench/results)
#   TARN_LOG                 the server's log filter (its log: WORK/run-N/server.log, kept with --keep)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
extra=()
case "${1:-}" in
    --smoke)
        extra=(--runs 1 --readers 4 --idle-s 3 --load-s 5 --warmup-s 1 --series-days 30)
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
esac
if [ "${1:-}" = "--" ]; then
    shift
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tarn-target}"
(cd "$repo" && cargo build --release -p tarn-cli -p tarn-bench)
bin="$CARGO_TARGET_DIR/release"
cd "$repo"
exec "$bin/serve-load" --tarn "$bin/tarn" \
    --work "${TARN_BENCH_WORK:-bench/data/serve-load}" \
    --results "${TARN_BENCH_RESULTS:-bench/results}" \
    "${extra[@]}" "$@"
