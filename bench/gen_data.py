#!/usr/bin/env python3
"""Generate the shared, deterministic input data for the tarn benchmarks.

Every system (tarn and the Python peers) reads exactly these files, so the
numbers compare the stores, not the data. Layout of --out DIR:

  w1.parquet              bulk-load series: N rows at 1-minute steps from
                          2020-01-01T00:00:00Z (default N = 5 years of minutes)
  w2/day_0000.parquet ..  K append batches of one day (1440 rows) each, which
                          continue the w1 series without a gap
  w3.parquet              432 upsert rows: 1% of the last 30 days of w1, same
                          ts values, changed payload
  w4.json                 {"start", "end"}: a one-week [start, end) read range
                          aligned to the midnight nearest the middle of w1

Columns everywhere: ts timestamp[ns, tz=UTC], a/b/c/d float64, n int64.

Usage: python bench/gen_data.py --out DIR [--rows N] [--appends K]
"""

import argparse
import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MINUTE_NS = 60 * 10**9
DAY_NS = 1440 * MINUTE_NS
DAY_ROWS = 1440
START_NS = int(np.datetime64("2020-01-01T00:00:00", "ns").astype(np.int64))
DEFAULT_ROWS = 5 * 365 * 1440
DEFAULT_APPENDS = 2000
ROW_GROUP = 100_000
W3_WINDOW_ROWS = 30 * DAY_ROWS
W3_FRACTION = 0.01
# Added to the payload of the upserted rows so a reader can tell old from new
# at a glance (a..d are ~N(0,1) and n < 1e6, so +1000 never collides).
W3_DELTA = 1000
W4_DAYS = 7

SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("ns", tz="UTC")),
        ("a", pa.float64()),
        ("b", pa.float64()),
        ("c", pa.float64()),
        ("d", pa.float64()),
        ("n", pa.int64()),
    ]
)


def make_table(ts_ns, rng):
    """Build one table; the draw order (a, b, c, d, then n) is part of the
    data definition, so the Rust side can never disagree about it."""
    rows = len(ts_ns)
    cols = [pa.array(ts_ns, type=pa.int64()).cast(SCHEMA.field("ts").type)]
    for _ in "abcd":
        cols.append(pa.array(rng.normal(size=rows), type=pa.float64()))
    cols.append(pa.array(rng.integers(0, 1_000_000, size=rows, dtype=np.int64), type=pa.int64()))
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def write(table, path):
    # No pandas metadata and fixed writer options, so the bytes only depend
    # on the pyarrow version.
    pq.write_table(table, path, compression="snappy", row_group_size=ROW_GROUP)


def iso(ns):
    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")) + "Z"


def week_range(rows):
    """Midnight nearest the middle of the series (the instant halfway between
    first and last ts, so there is never a tie), and the week after it."""
    mid = START_NS + (rows - 1) * MINUTE_NS // 2
    start = (mid + DAY_NS // 2) // DAY_NS * DAY_NS
    return start, start + W4_DAYS * DAY_NS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows in w1 (default %(default)s)")
    ap.add_argument("--appends", type=int, default=DEFAULT_APPENDS, help="number of w2 day files (default %(default)s)")
    args = ap.parse_args(argv)

    if args.rows < W3_WINDOW_ROWS:
        sys.exit(f"--rows must be at least {W3_WINDOW_ROWS} (the 30-day W3 window)")
    os.makedirs(os.path.join(args.out, "w2"), exist_ok=True)

    ts = START_NS + np.arange(args.rows, dtype=np.int64) * MINUTE_NS
    w1 = make_table(ts, np.random.default_rng(42))
    write(w1, os.path.join(args.out, "w1.parquet"))

    # One generator across all days, drawn in day order: day k's content does
    # not depend on --appends, so a smoke run's files are a prefix of a full run's.
    rng = np.random.default_rng(43)
    first = int(ts[-1]) + MINUTE_NS
    day_offsets = np.arange(DAY_ROWS, dtype=np.int64) * MINUTE_NS
    for k in range(args.appends):
        day = make_table(first + k * DAY_NS + day_offsets, rng)
        write(day, os.path.join(args.out, "w2", f"day_{k:04d}.parquet"))
    # Drop day files left over from an earlier run with a larger --appends,
    # so "all files in w2/" always means this run's K.
    for name in os.listdir(os.path.join(args.out, "w2")):
        if name.startswith("day_") and name.endswith(".parquet") and int(name[4:-8]) >= args.appends:
            os.remove(os.path.join(args.out, "w2", name))

    n_upd = int(round(W3_WINDOW_ROWS * W3_FRACTION))
    base = args.rows - W3_WINDOW_ROWS
    pick = np.sort(np.random.default_rng(44).choice(W3_WINDOW_ROWS, size=n_upd, replace=False)) + base
    old = w1.take(pa.array(pick))
    w3 = pa.Table.from_arrays(
        [old["ts"]]
        + [pa.array(old[c].to_numpy() + float(W3_DELTA)) for c in "abcd"]
        + [pa.array(old["n"].to_numpy() + W3_DELTA)],
        schema=SCHEMA,
    )
    write(w3, os.path.join(args.out, "w3.parquet"))

    start, end = week_range(args.rows)
    if end > int(ts[-1]) + MINUTE_NS:
        sys.exit("series too short for a one-week W4 range")
    with open(os.path.join(args.out, "w4.json"), "w") as f:
        json.dump({"start": iso(start), "end": iso(end)}, f)
        f.write("\n")

    print(
        f"wrote {args.out}: w1 {args.rows} rows [{iso(ts[0])} .. {iso(ts[-1])}], "
        f"w2 {args.appends} days, w3 {n_upd} rows, w4 [{iso(start)}, {iso(end)})"
    )


if __name__ == "__main__":
    main()
