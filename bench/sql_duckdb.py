#!/usr/bin/env python3
"""DuckDB's side of W5 (`tarn-bench sql`) and W7 (`tarn-bench registry`): runs the queries
tarn-bench sends, on the Parquet files of tarn's snapshots, and times them.

tarn-bench starts this script once and talks to it over stdin/stdout, one JSON object per
line, so that tarn's runs and DuckDB's alternate within one round (load on the shared machine
then falls on both alike):

  in:  {"sql": "...", "result": "/path.json" | null, "explain": false}
  out: {"seconds": t, "rows": n}  or  {"error": "..."}

  in:  {"sql": "CREATE TABLE ...", "execute": true}   a statement without a result
       (W7 loads the mapping rows into a table with it, untimed); out: {"seconds": t, "rows": 0}

The timer covers `con.sql(sql).to_arrow_table()`: planning (DuckDB reads the files' footers
then) and execution into Arrow, as tarn's timer covers planning and collecting the batches.
With "result", the answer is written to that file as {"columns": [...], "rows": [[...]]},
timestamps as int64 nanoseconds since the epoch, for tarn-bench to compare with its own.
With "explain", DuckDB's EXPLAIN ANALYZE of the query goes to stderr (untimed).

Usage: python bench/sql_duckdb.py [--threads N]
"""

import argparse
import json
import math
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc


def column_values(col):
    """A result column as JSON-ready Python values: timestamps as int64 ns since the epoch."""
    t = col.type
    if pa.types.is_timestamp(t):
        col = pc.cast(pc.cast(col, pa.timestamp("ns", tz=t.tz)), pa.int64())
    elif pa.types.is_date(t):
        col = pc.cast(pc.cast(col, pa.date32()), pa.int32())
    out = col.to_pylist()
    if pa.types.is_floating(col.type):
        out = [None if v is None or math.isnan(v) else v for v in out]
    return out


def write_result(table, path):
    cols = [column_values(table.column(i)) for i in range(table.num_columns)]
    rows = [list(r) for r in zip(*cols)] if cols else []
    with open(path, "w") as f:
        json.dump({"columns": table.column_names, "rows": rows}, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads (default %(default)s)")
    args = ap.parse_args(argv)

    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    # date_trunc on TIMESTAMPTZ truncates in the session's time zone; tarn's (DataFusion's)
    # truncates in the column's, which is UTC.
    con.execute("SET TimeZone = 'UTC'")
    settings = {
        s: con.sql(f"SELECT current_setting('{s}')").fetchall()[0][0]
        for s in ("threads", "TimeZone", "enable_external_file_cache", "parquet_metadata_cache")
    }
    print(json.dumps({"ready": True, "version": duckdb.__version__, "settings": settings}), flush=True)

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            sql = req["sql"]
            if req.get("execute"):
                t0 = time.perf_counter()
                con.execute(sql)
                print(json.dumps({"seconds": time.perf_counter() - t0, "rows": 0}), flush=True)
                continue
            t0 = time.perf_counter()
            table = con.sql(sql).to_arrow_table()
            dt = time.perf_counter() - t0
            if req.get("result"):
                write_result(table, req["result"])
            if req.get("explain"):
                plan = con.sql("EXPLAIN ANALYZE " + sql).fetchall()
                print("\n".join(str(r[-1]) for r in plan), file=sys.stderr, flush=True)
            reply = {"seconds": dt, "rows": table.num_rows}
        except Exception as e:  # reported to tarn-bench, which records it
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
