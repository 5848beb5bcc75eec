#!/usr/bin/env bash
# Create (or reuse) the Python venv for the benchmark peers and print the path
# of its python on stdout, so callers can do:  PY=$(bench/setup_venv.sh)
#
# The venv lives outside the repo (default ~/.cache/tarn-bench-venv, override
# with TARN_BENCH_VENV) because it is ~1 GB of wheels. Re-running is cheap:
# pip is skipped while the hash of requirements.txt matches the one stored in
# the venv after the last successful install + import check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/requirements.txt"
venv="${TARN_BENCH_VENV:-$HOME/.cache/tarn-bench-venv}"
python="${PYTHON:-python3}"
stamp="$venv/.tarn-bench-requirements.sha256"

log() { echo "setup_venv: $*" >&2; }

# A venv whose base interpreter vanished (python upgraded/removed) cannot be
# repaired in place; start over rather than fail later in a confusing way.
if [ -e "$venv" ] && ! "$venv/bin/python" -c '' 2>/dev/null; then
    log "venv at $venv is broken, recreating"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    log "creating venv at $venv"
    "$python" -m venv "$venv"
fi

want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "requirements already installed in $venv"
else
    log "installing $req into $venv"
    # Quiet pip's self-update nag; its output goes to stderr so stdout stays
    # just the interpreter path.
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
    # Import everything now: a wheel that installs but cannot load (missing
    # system library, wrong ABI) should fail here, not mid-benchmark.
    "$venv/bin/python" - >&2 <<'PY'
import arcticdb, deltalake, duckdb, numpy, pandas, pyarrow
for m in (pyarrow, numpy, pandas, arcticdb, deltalake, duckdb):
    print(f"  {m.__name__} {m.__version__}")
PY
    # Written last, so an interrupted or failed install is retried next time.
    echo "$want" > "$stamp"
fi

echo "$venv/bin/python"
