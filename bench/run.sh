#!/usr/bin/env bash
# Run the W1-W9 benchmarks end to end: build tarn, set up the peers' venv, generate the
# data, run tarn (in-process and CLI) and the Python peers into one results file, print the
# report.
#
#   bench/run.sh            full run (5-year w1, 2000 appends each, W5 SQL against DuckDB,
#                           W6 on 10,000 versions, W7 on 10 M rows; ~35 min on 2 cores)
#   bench/run.sh --smoke    small data, few repetitions (a couple of minutes); CI-style check
#
# Exits non-zero if a build, a step or any workload fails (error lines in the results).
# Everything below can be overridden from the environment (defaults: full / smoke):
#   TARN_BENCH_ROWS          w1 rows                          (gen_data default 2,628,000 / 200000)
#   TARN_BENCH_DAYS          day files generated for W2       (2000 / 20)
#   TARN_BENCH_APPENDS       tarn in-process W2 appends       (2000 / 20)
#   TARN_BENCH_APPENDS_1D    same, 1D row-group variant       (2000 / 20)
#   TARN_BENCH_CLI_APPENDS   tarn CLI W2 appends              (2000 / 20)
#   TARN_BENCH_PEER_APPENDS  Python peers' W2 appends         (2000 / 20)
#   TARN_BENCH_REPEAT        W4 repetitions                   (15 / 5)
#   TARN_BENCH_W1_RUNS       tarn W1 runs                     (3 / 1)
#   TARN_BENCH_W3_RUNS       tarn W3 runs                     (5 / 2)
#   TARN_BENCH_PEERS         peers to run (peers.py --systems; default all, "none" to skip)
#   TARN_BENCH_MODE          tarn-bench --mode: inproc, cli or both (both)
#   TARN_BENCH_BREAKDOWN=1   also print tarn's per-step timing breakdown (into the log)
#   TARN_BENCH_WORKLOADS     all, w1-w4, sql (W5 only), history (W6 only), registry (W7 only),
#                            scale (W8 only), backends (W9 only) or memory (M1, M2 only)  (all)
#   TARN_BENCH_MEMORY_ROWS   M1, M2: dataset sizes in rows, comma-separated (8000000,32000000 / 200000,800000)
#   TARN_BENCH_SQL_REPEAT    W5: timed rounds of every query  (10 / 3)
#   TARN_BENCH_SQL_DATASETS  W5 (b): datasets                 (100 / 20)
#   TARN_BENCH_SQL_DATASET_ROWS   W5 (b): rows per dataset    (100000 / 20000)
#   TARN_BENCH_SQL_THREADS   W5: threads of tarn (DataFusion partitions) and of DuckDB; W7: of DuckDB  (2)
#   TARN_BENCH_SQL_ARGS      W5: more tarn-bench sql arguments, e.g. "--datafusion-date-trunc" or
#                            "--set datafusion.execution.batch_size=32768" (none)
#   TARN_BENCH_HISTORY_VERSIONS   W6: versions of the dataset (10000 / 500)
#   TARN_BENCH_HISTORY_REPEAT     W6: repetitions per measurement (15 / 5)
#   TARN_BENCH_REGISTRY_ROWS      W7: rows of the registered dataset  (10000000 / 200000)
#   TARN_BENCH_REGISTRY_REPEAT    W7: timed rounds of every part      (5 / 3)
#   TARN_BENCH_REGISTRY_ARGS      W7: more tarn-bench registry arguments, e.g. "--parts validate,read" (none)
#   TARN_BENCH_SCALE_DATASETS     W8: datasets of the big lake, per backend (1000000 / 20000)
#   TARN_BENCH_SCALE_SAMPLE       W8: durable creations timed on the empty and the full lake (20000 / 2000)
#   TARN_BENCH_SCALE_BACKENDS     W8: backends, comma-separated: local (SQLite + files), postgres
#                                 (PostgreSQL + files), remote (PostgreSQL + S3)  (local,postgres,remote)
#   TARN_BENCH_BACKENDS_APPENDS   W9: W2 appends per backend (200 / 20)
#   TARN_BENCH_BACKENDS_RUNS      W9: W1 and W3 runs per backend (3 / 1)
#                            W8 and W9 run under scripts/with-services (PostgreSQL + SeaweedFS on
#                            loopback, started and stopped by it); W8 and W9 repeat TARN_BENCH_REPEAT times
#   TARN_BENCH_PEER_HISTORY  W6 on ArcticDB: version counts, comma-separated, "none" to skip
#                            (1000,2000 / 200); also skipped when TARN_BENCH_PEERS leaves
#                            out arcticdb-lmdb
#   TARN_BENCH_DATA          data directory                   (bench/data/full or bench/data/smoke)
#   TARN_BENCH_WORK          scratch directory for the stores (bench/data/work)
#   TARN_BENCH_RESULTS       results directory                (bench/results)
#   CARGO_TARGET_DIR         as for cargo                     ($HOME/.cache/tarn-target, as .ci/run)
#   TARN_BENCH_VENV, PYTHON  see bench/setup_venv.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
mode=full
case "${1:-}" in
    --smoke) mode=smoke ;;
    "") ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: bench/run.sh [--smoke]" >&2
        exit 2
        ;;
esac

if [ "$mode" = smoke ]; then
    rows=${TARN_BENCH_ROWS:-200000}
    days=${TARN_BENCH_DAYS:-20}
    appends=${TARN_BENCH_APPENDS:-20}
    appends_1d=${TARN_BENCH_APPENDS_1D:-20}
    cli_appends=${TARN_BENCH_CLI_APPENDS:-20}
    peer_appends=${TARN_BENCH_PEER_APPENDS:-20}
    repeat=${TARN_BENCH_REPEAT:-5}
    w1_runs=${TARN_BENCH_W1_RUNS:-1}
    w3_runs=${TARN_BENCH_W3_RUNS:-2}
    hist_versions=${TARN_BENCH_HISTORY_VERSIONS:-500}
    hist_repeat=${TARN_BENCH_HISTORY_REPEAT:-5}
    peer_hist=${TARN_BENCH_PEER_HISTORY:-200}
    sql_repeat=${TARN_BENCH_SQL_REPEAT:-3}
    sql_datasets=${TARN_BENCH_SQL_DATASETS:-20}
    sql_dataset_rows=${TARN_BENCH_SQL_DATASET_ROWS:-20000}
    registry_rows=${TARN_BENCH_REGISTRY_ROWS:-200000}
    registry_repeat=${TARN_BENCH_REGISTRY_REPEAT:-3}
    scale_datasets=${TARN_BENCH_SCALE_DATASETS:-20000}
    scale_sample=${TARN_BENCH_SCALE_SAMPLE:-2000}
    backends_appends=${TARN_BENCH_BACKENDS_APPENDS:-20}
    backends_runs=${TARN_BENCH_BACKENDS_RUNS:-1}
else
    rows=${TARN_BENCH_ROWS:-}
    days=${TARN_BENCH_DAYS:-2000}
    appends=${TARN_BENCH_APPENDS:-2000}
    appends_1d=${TARN_BENCH_APPENDS_1D:-2000}
    cli_appends=${TARN_BENCH_CLI_APPENDS:-2000}
    peer_appends=${TARN_BENCH_PEER_APPENDS:-2000}
    repeat=${TARN_BENCH_REPEAT:-15}
    w1_runs=${TARN_BENCH_W1_RUNS:-3}
    w3_runs=${TARN_BENCH_W3_RUNS:-5}
    hist_versions=${TARN_BENCH_HISTORY_VERSIONS:-10000}
    hist_repeat=${TARN_BENCH_HISTORY_REPEAT:-15}
    peer_hist=${TARN_BENCH_PEER_HISTORY:-1000,2000}
    sql_repeat=${TARN_BENCH_SQL_REPEAT:-10}
    sql_datasets=${TARN_BENCH_SQL_DATASETS:-100}
    sql_dataset_rows=${TARN_BENCH_SQL_DATASET_ROWS:-100000}
    registry_rows=${TARN_BENCH_REGISTRY_ROWS:-10000000}
    registry_repeat=${TARN_BENCH_REGISTRY_REPEAT:-5}
    scale_datasets=${TARN_BENCH_SCALE_DATASETS:-1000000}
    scale_sample=${TARN_BENCH_SCALE_SAMPLE:-20000}
    backends_appends=${TARN_BENCH_BACKENDS_APPENDS:-200}
    backends_runs=${TARN_BENCH_BACKENDS_RUNS:-3}
fi
scale_backends=${TARN_BENCH_SCALE_BACKENDS:-local,postgres,remote}
sql_threads=${TARN_BENCH_SQL_THREADS:-2}
workloads=${TARN_BENCH_WORKLOADS:-all}
case "$workloads" in
    all | w1-w4 | sql | history | registry | scale | backends | memory) ;;
    *)
        echo "run.sh: TARN_BENCH_WORKLOADS must be all, w1-w4, sql, history, registry, scale, backends or memory (not $workloads)" >&2
        exit 2
        ;;
esac
run_w1_w4=0
run_sql=0
run_history=0
run_registry=0
run_scale=0
run_backends=0
run_memory=0
case "$workloads" in
    all) run_w1_w4=1 run_sql=1 run_history=1 run_registry=1 run_scale=1 run_backends=1 run_memory=1 ;;
    memory) run_memory=1 ;;
    scale) run_scale=1 ;;
    backends) run_backends=1 ;;
    w1-w4) run_w1_w4=1 ;;
    sql) run_sql=1 ;;
    history) run_history=1 ;;
    registry) run_registry=1 ;;
esac
# ArcticDB's W6 runs when the peers include it.
case ",${TARN_BENCH_PEERS:-arcticdb-lmdb}," in
    *,arcticdb-lmdb,*) ;;
    *) peer_hist=none ;;
esac
peers=${TARN_BENCH_PEERS:-}
# W5's and W7's DuckDB side runs when the peers include duckdb.
sql_duckdb=1
case ",${TARN_BENCH_PEERS:-duckdb}," in
    *,duckdb,*) ;;
    *) sql_duckdb=0 ;;
esac
bench_mode=${TARN_BENCH_MODE:-both}
data=${TARN_BENCH_DATA:-$here/data/$mode}
work=${TARN_BENCH_WORK:-$here/data/work}
results_dir=${TARN_BENCH_RESULTS:-$here/results}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tarn-target}"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
prefix=results
[ "$mode" = smoke ] && prefix=smoke
mkdir -p "$results_dir"
results="$results_dir/$prefix-$stamp.jsonl"
report="$results_dir/$prefix-$stamp.md"
log="$results_dir/$prefix-$stamp.log"
# Everything (ours, cargo's, the harnesses') also goes to the log next to the results.
exec > >(tee -a "$log") 2>&1

start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(($(date +%s) - start))"; }

step "build (release): tarn-bench, tarn"
(cd "$repo" && cargo build --release -p tarn-bench -p tarn-cli)
bin="$CARGO_TARGET_DIR/release"
for b in tarn tarn-bench; do
    [ -x "$bin/$b" ] || { echo "run.sh: $bin/$b missing after the build" >&2; exit 1; }
done
rev=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(cd "$repo" && git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    rev="$rev-dirty"
fi
export TARN_BENCH_REV="git $rev"

step "python venv"
PY=$("$here/setup_venv.sh")
echo "python: $PY"

if [ "$run_w1_w4" = 1 ] || [ "$run_sql" = 1 ] || [ "$run_backends" = 1 ]; then
    step "data ($mode) in $data"
    # Regenerated only when the parameters or the generator changed.
    want="rows=${rows:-default} days=$days gen=$(sha256sum "$here/gen_data.py" | cut -d' ' -f1)"
    if [ -f "$data/.params" ] && [ "$(cat "$data/.params")" = "$want" ]; then
        echo "reusing $data ($want)"
    else
        rm -f "$data/.params"
        "$PY" "$here/gen_data.py" --out "$data" --appends "$days" ${rows:+--rows "$rows"}
        echo "$want" > "$data/.params"
    fi
fi

# Stores from an interrupted earlier run would only take disk space.
rm -rf "$work"
mkdir -p "$work"
status=0

if [ "$run_w1_w4" = 1 ]; then
    step "tarn-bench --mode $bench_mode -> $results"
    bench_args=(--data "$data" --work "$work/tarn" --results "$results" --mode "$bench_mode" --tarn "$bin/tarn"
        --appends "$appends" --appends-1d "$appends_1d" --cli-appends "$cli_appends"
        --repeat "$repeat" --w1-runs "$w1_runs" --w3-runs "$w3_runs")
    [ "${TARN_BENCH_BREAKDOWN:-0}" = 1 ] && bench_args+=(--breakdown)
    echo "+ tarn-bench ${bench_args[*]}"
    "$bin/tarn-bench" "${bench_args[@]}" || { echo "run.sh: tarn-bench failed (exit $?)"; status=1; }

    if [ "$peers" != none ]; then
        step "peers.py -> $results"
        peer_args=(--data "$data" --work "$work/peers" --results "$results" --appends "$peer_appends" --repeat "$repeat")
        [ -n "$peers" ] && peer_args+=(--systems "$peers")
        echo "+ peers.py ${peer_args[*]}"
        "$PY" "$here/peers.py" "${peer_args[@]}" || { echo "run.sh: peers.py failed (exit $?)"; status=1; }
    fi
fi

if [ "$run_sql" = 1 ]; then
    step "tarn-bench sql (W5) -> $results"
    sql_args=(sql --data "$data" --work "$work/sql" --results "$results" --repeat "$sql_repeat"
        --datasets "$sql_datasets" --dataset-rows "$sql_dataset_rows" --threads "$sql_threads"
        --python "$PY" --duckdb-worker "$here/sql_duckdb.py")
    [ "$sql_duckdb" = 0 ] && sql_args+=(--no-duckdb)
    # Word-split on purpose: a list of arguments.
    # shellcheck disable=SC2206
    [ -n "${TARN_BENCH_SQL_ARGS:-}" ] && sql_args+=(${TARN_BENCH_SQL_ARGS})
    echo "+ tarn-bench ${sql_args[*]}"
    "$bin/tarn-bench" "${sql_args[@]}" || { echo "run.sh: tarn-bench sql failed (exit $?)"; status=1; }
fi

if [ "$run_history" = 1 ]; then
    step "tarn-bench history --versions $hist_versions -> $results"
    hist_args=(history --versions "$hist_versions" --repeat "$hist_repeat" --work "$work/history"
        --results "$results" --tarn "$bin/tarn")
    echo "+ tarn-bench ${hist_args[*]}"
    "$bin/tarn-bench" "${hist_args[@]}" || { echo "run.sh: tarn-bench history failed (exit $?)"; status=1; }

    if [ "$peers" != none ] && [ "$peer_hist" != none ]; then
        step "peers.py --history-versions $peer_hist -> $results"
        peer_args=(--history-versions "$peer_hist" --work "$work/peers" --results "$results" --repeat "$hist_repeat")
        echo "+ peers.py ${peer_args[*]}"
        "$PY" "$here/peers.py" "${peer_args[@]}" || { echo "run.sh: peers.py (W6) failed (exit $?)"; status=1; }
    fi
fi
if [ "$run_memory" = 1 ]; then
    memory_rows=${TARN_BENCH_MEMORY_ROWS:-8000000,32000000}
    [ "$mode" = smoke ] && memory_rows=${TARN_BENCH_MEMORY_ROWS:-200000,800000}
    step "tarn-bench memory (M1, M2) --rows $memory_rows -> $results"
    mem_args=(memory --work "$work/memory" --results "$results" --tarn "$bin/tarn" --rows "$memory_rows")
    echo "+ tarn-bench ${mem_args[*]}"
    "$bin/tarn-bench" "${mem_args[@]}" || { echo "run.sh: tarn-bench memory failed (exit $?)"; status=1; }
fi
if [ "$run_registry" = 1 ]; then
    step "tarn-bench registry (W7) --rows $registry_rows -> $results"
    reg_args=(registry --work "$work/registry" --results "$results" --rows "$registry_rows"
        --repeat "$registry_repeat" --threads "$sql_threads" --python "$PY" --duckdb-worker "$here/sql_duckdb.py")
    [ "$sql_duckdb" = 0 ] && reg_args+=(--no-duckdb)
    # Word-split on purpose: a list of arguments.
    # shellcheck disable=SC2206
    [ -n "${TARN_BENCH_REGISTRY_ARGS:-}" ] && reg_args+=(${TARN_BENCH_REGISTRY_ARGS})
    echo "+ tarn-bench ${reg_args[*]}"
    "$bin/tarn-bench" "${reg_args[@]}" || { echo "run.sh: tarn-bench registry failed (exit $?)"; status=1; }
fi
if [ "$run_scale" = 1 ]; then
    for backend in ${scale_backends//,/ }; do
        step "tarn-bench scale (W8) --backend $backend --datasets $scale_datasets -> $results"
        scale_args=(scale --backend "$backend" --datasets "$scale_datasets" --durable-sample "$scale_sample"
            --repeat "$repeat" --work "$work/scale" --results "$results" --tarn "$bin/tarn")
        echo "+ tarn-bench ${scale_args[*]}"
        "$repo/scripts/with-services" "$bin/tarn-bench" "${scale_args[@]}" \
            || { echo "run.sh: tarn-bench scale failed (exit $?)"; status=1; }
        rm -rf "$work/scale"
    done
fi
if [ "$run_backends" = 1 ]; then
    step "tarn-bench backends (W9) -> $results"
    backends_args=(backends --data "$data" --work "$work/backends" --results "$results"
        --appends "$backends_appends" --repeat "$repeat" --runs "$backends_runs")
    echo "+ tarn-bench ${backends_args[*]}"
    "$repo/scripts/with-services" "$bin/tarn-bench" "${backends_args[@]}" \
        || { echo "run.sh: tarn-bench backends failed (exit $?)"; status=1; }
fi
rm -rf "$work"

step "report"
"$PY" "$here/report.py" --results "$results" --out "$report" || status=1
errors=$(grep -c '"error":' "$results" 2>/dev/null || true)
if [ "${errors:-0}" -gt 0 ]; then
    echo "run.sh: $errors workload(s) failed:" >&2
    grep '"error":' "$results" >&2
    status=1
fi
step "done (exit $status): results $results, report $report, log $log"
exit "$status"
