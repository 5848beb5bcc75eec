#!/usr/bin/env python3
"""Run the tarn benchmark workloads (W1-W4) against Python peer systems.

  W1  bulk write of w1.parquet into an empty store, made durable
  W2  append the w2/day_*.parquet files one at a time after the end
  W3  upsert w3.parquet (dedup on ts) into a fresh W1 state
  W4  read the one-week range of w4.json from the W1 state, --repeat times

Systems: pyarrow-by-hand, arcticdb-lmdb, deltalake, duckdb (W4 only).

Usage:
  python bench/peers.py --data DIR --work DIR --results FILE
                        [--systems a,b,...] [--appends K] [--repeat R]
  python bench/peers.py --history-versions 1000,2000 --work DIR --results FILE [--repeat R]
                        (W6 on ArcticDB only: list_versions and read(as_of=...))

Appends one JSON object per line to --results, in the same format as the Rust
side ("tarn (in-process)", "tarn (CLI)"), so bench/report.py can put them in
one table:
  {"system": s, "workload": "W1".."W4", "median_s": t, "runs": n, "extra": {...}}
or, when a system fails a workload:
  {"system": s, "workload": w, "error": "..."}

Rules that keep the comparison fair:
  * Inputs are loaded (and converted to the system's native input type, e.g.
    pandas for ArcticDB) before any timer starts; timers cover only the
    system's own work, plus fsyncs where the system leaves durability to the
    caller.
  * Each store is created empty (untimed) in a fresh temp dir under --work.
  * Every workload is checked for correctness after timing; a wrong answer is
    reported as an error, not as a time.
"""

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_GROUP = 100_000
DAY_ROWS = 1440
TS_TYPE = pa.timestamp("ns", tz="UTC")
ALL_SYSTEMS = ["pyarrow-by-hand", "arcticdb-lmdb", "deltalake", "duckdb"]


# --------------------------------------------------------------------------
# helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fsync_path(path):
    # Directories need their own fsync on Linux for a new entry (create or
    # rename) to survive a crash, not just the file contents.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


def ts_ns(dt):
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def as_ns(col):
    """int64 nanoseconds of a timestamp column whatever its unit/zone, so
    results from systems that store microseconds (Delta) compare exactly."""
    return pc.cast(pc.cast(col, TS_TYPE), pa.int64()).to_numpy()


class Inputs:
    """Everything the workloads need, loaded into memory once."""

    def __init__(self, data_dir, appends):
        self.w1 = pq.read_table(os.path.join(data_dir, "w1.parquet"))
        days = sorted(f for f in os.listdir(os.path.join(data_dir, "w2")) if f.endswith(".parquet"))
        if appends is not None:
            if appends > len(days):
                raise SystemExit(f"--appends {appends} but only {len(days)} day files in {data_dir}/w2")
            days = days[:appends]
        self.w2 = [pq.read_table(os.path.join(data_dir, "w2", f)) for f in days]
        self.w3 = pq.read_table(os.path.join(data_dir, "w3.parquet"))
        with open(os.path.join(data_dir, "w4.json")) as f:
            w4 = json.load(f)
        self.start = parse_ts(w4["start"])
        self.end = parse_ts(w4["end"])
        self.start_ns = ts_ns(self.start)
        self.end_ns = ts_ns(self.end)
        self.w4_rows = int((self.end_ns - self.start_ns) // (60 * 10**9))
        self.rows = self.w1.num_rows
        self.last_ns = int(as_ns(self.w1["ts"])[-1])


# --------------------------------------------------------------------------
# systems
#
# Each system works on a "store", a fresh directory. The harness times the
# calls to bulk_write / append / upsert / read_range; everything else
# (open_store, count, rows_at, ...) is untimed plumbing or verification.


class PyarrowByHand:
    """The manual approach: a directory of Parquet files managed by hand."""

    name = "pyarrow-by-hand"
    workloads = ("W1", "W2", "W3", "W4")
    durability = "harness fsyncs each written file and the directory"

    def __init__(self, inp):
        self.inp = inp
        self.version = pa.__version__

    def open_store(self, store):
        self.dir = os.path.join(store, "dataset")
        os.makedirs(self.dir)

    def _write_durable(self, table, name, **kw):
        # Write under a temp name and rename: a reader (or a crash) never
        # sees a half-written file, which is what a careful by-hand pipeline
        # has to do since Parquet files are only valid once the footer lands.
        path = os.path.join(self.dir, name)
        tmp = path + ".tmp"
        pq.write_table(table, tmp, compression="snappy", **kw)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(self.dir)

    def bulk_write(self):
        self._write_durable(self.inp.w1, "part-000000.parquet", row_group_size=ROW_GROUP)

    def append(self, i):
        # Cheapest possible append: one new file per batch, nothing rewritten.
        # The cost shows up later as file count (listing, footers) on reads.
        self._write_durable(self.inp.w2[i], f"day_{i:04d}.parquet", row_group_size=ROW_GROUP)

    def upsert(self):
        # Parquet has no in-place update, so the manual upsert is: read all,
        # drop rows whose ts is being replaced, concat the new rows, sort,
        # rewrite everything, and only then drop the superseded files.
        old_files = [f for f in os.listdir(self.dir) if f.endswith(".parquet")]
        old = pq.read_table(self.dir)
        new = self.inp.w3
        keep = pc.invert(pc.is_in(old["ts"], value_set=new["ts"]))
        merged = pa.concat_tables([old.filter(keep), new]).sort_by("ts")
        self._write_durable(merged, "part-000000.parquet", row_group_size=ROW_GROUP)
        for f in old_files:
            if f != "part-000000.parquet":
                os.remove(os.path.join(self.dir, f))
        fsync_path(self.dir)

    def read_range(self):
        return pq.read_table(
            self.dir,
            filters=[
                ("ts", ">=", pa.scalar(self.inp.start_ns, type=TS_TYPE)),
                ("ts", "<", pa.scalar(self.inp.end_ns, type=TS_TYPE)),
            ],
        )

    def count(self):
        return pq.ParquetDataset(self.dir).read(columns=["ts"]).num_rows

    def rows_at(self, ts):
        t = pq.read_table(self.dir)
        return t.filter(pc.is_in(t["ts"], value_set=ts))

    def facts(self):
        files = [f for f in os.listdir(self.dir) if f.endswith(".parquet")]
        rg = sum(pq.ParquetFile(os.path.join(self.dir, f)).num_row_groups for f in files)
        # Default writer settings on purpose (what a by-hand pipeline gets);
        # note that pyarrow's default dictionary encoding is most of W1's time
        # on random floats (use_dictionary=False writes ~4x faster here).
        return {"files": len(files), "row_groups": rg, "writer": "pyarrow defaults (dictionary on)"}

    def close(self):
        pass


class ArcticLmdb:
    """ArcticDB on its local LMDB backend; pandas in, pandas out."""

    name = "arcticdb-lmdb"
    workloads = ("W1", "W2", "W3", "W4")
    # ArcticDB opens LMDB without MDB_NOSYNC, so every commit is fsynced by
    # LMDB itself; adding our own fsync would only double-count.
    durability = "LMDB commit (synced by LMDB)"
    symbol = "w"

    def __init__(self, inp):
        import arcticdb
        import pandas as pd

        self.pd = pd
        self.version = arcticdb.__version__
        self.inp = inp
        # DataFrames are ArcticDB's native input; converting inside the timer
        # would charge it for pyarrow->pandas work the other systems skip.
        self.w1 = self._df(inp.w1)
        self.w2 = [self._df(t) for t in inp.w2]
        self.w3 = self._df(inp.w3)
        self.start = pd.Timestamp(inp.start_ns, tz="UTC")
        # date_range is inclusive on both ends; the workload is [start, end).
        self.end_incl = pd.Timestamp(inp.end_ns - 1, tz="UTC")

    @staticmethod
    def _df(table):
        return table.to_pandas().set_index("ts")

    def open_store(self, store):
        from arcticdb import Arctic

        self.ac = Arctic("lmdb://" + os.path.join(store, "lmdb"))
        self.lib = self.ac.get_library("bench", create_if_missing=True)

    def bulk_write(self):
        self.lib.write(self.symbol, self.w1)

    def append(self, i):
        self.lib.append(self.symbol, self.w2[i])

    def upsert(self):
        # lib.update is ArcticDB's upsert, but its unit is a date range, not
        # a row: it deletes every stored row in [first ts, last ts] of the
        # new frame and writes the frame in their place. Our 432 rows are
        # spread over 30 days, so a bare update would drop the ~42k rows in
        # between. A dedup-on-ts upsert with update therefore has to read
        # that range, splice in the new rows, and write the range back.
        new = self.w3
        lo, hi = new.index[0], new.index[-1]
        old = self.lib.read(self.symbol, date_range=(lo, hi)).data
        merged = self.pd.concat([old[~old.index.isin(new.index)], new]).sort_index()
        self.lib.update(self.symbol, merged)

    def read_range(self):
        return self.lib.read(self.symbol, date_range=(self.start, self.end_incl)).data

    def count(self):
        return self.lib.get_description(self.symbol).row_count

    def rows_at(self, ts):
        t = ts.to_pandas()
        df = self.lib.read(self.symbol, date_range=(t.min(), t.max())).data
        return pa.Table.from_pandas(df[df.index.isin(t)].reset_index(), preserve_index=False)

    def facts(self):
        return {"input": "pandas.DataFrame"}

    def close(self):
        self.lib = None
        self.ac = None
        gc.collect()


class Delta:
    """delta-rs (deltalake) on the local filesystem."""

    name = "deltalake"
    workloads = ("W1", "W2", "W3", "W4")
    # delta-rs writes through object_store, which does not fsync local
    # files; we fsync the files each commit added (read from its log entry,
    # so the cost does not grow with table size) plus the log entry itself.
    durability = "harness fsyncs files added by each commit, its log entry and dirs"

    def __init__(self, inp):
        import deltalake

        self.dl = deltalake
        self.version = deltalake.__version__
        self.inp = inp

    def open_store(self, store):
        self.path = os.path.join(store, "delta")

    def _fsync_commit(self, version):
        log_dir = os.path.join(self.path, "_delta_log")
        entry = os.path.join(log_dir, f"{version:020d}.json")
        with open(entry) as f:
            for line in f:
                add = json.loads(line).get("add")
                if add:
                    fsync_path(os.path.join(self.path, add["path"]))
        # Checkpoints written by the post-commit hook belong to this commit.
        for name in (f"{version:020d}.checkpoint.parquet", "_last_checkpoint"):
            p = os.path.join(log_dir, name)
            if os.path.exists(p) and (name != "_last_checkpoint" or version % 100 == 0):
                fsync_path(p)
        fsync_path(entry)
        fsync_path(log_dir)
        fsync_path(self.path)

    def bulk_write(self):
        self.dl.write_deltalake(self.path, self.inp.w1)
        self._fsync_commit(0)
        self.ver = 0

    def append(self, i):
        self.dl.write_deltalake(self.path, self.inp.w2[i], mode="append")
        self.ver += 1
        self._fsync_commit(self.ver)

    def upsert(self):
        dt = self.dl.DeltaTable(self.path)
        (
            dt.merge(self.inp.w3, predicate="t.ts = s.ts", source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        self._fsync_commit(dt.version())

    def read_range(self):
        # Opening the table (log replay) is part of a read: a reader has to
        # find the latest version, as ArcticDB and the Parquet listing do too.
        return self.dl.DeltaTable(self.path).to_pyarrow_table(
            filters=[("ts", ">=", self.inp.start), ("ts", "<", self.inp.end)]
        )

    def count(self):
        return self.dl.DeltaTable(self.path).count()

    def rows_at(self, ts):
        t = self.dl.DeltaTable(self.path).to_pyarrow_table()
        return t.filter(pc.is_in(as_ns(t["ts"]), value_set=pa.array(as_ns(ts))))

    def facts(self):
        files = self.dl.DeltaTable(self.path).file_uris()
        rg = sum(pq.ParquetFile(f.removeprefix("file://")).num_row_groups for f in files)
        # Delta's timestamp type is microseconds; ns input is truncated.
        return {"files": len(files), "row_groups": rg, "ts_unit": "us"}

    def close(self):
        pass


class DuckDB:
    """DuckDB querying the pyarrow-by-hand Parquet file directly (read only)."""

    name = "duckdb"
    workloads = ("W4",)
    durability = "n/a (reads the pyarrow-by-hand file)"
    QUERY = (
        "SELECT * FROM read_parquet(?) "
        # The file's ts is TIMESTAMPTZ_NS, which DuckDB 2 will not compare to
        # a TIMESTAMPTZ parameter implicitly; the cast is on the constant, so
        # the filter is still pushed down to row-group statistics.
        "WHERE ts >= CAST(? AS TIMESTAMPTZ_NS) AND ts < CAST(? AS TIMESTAMPTZ_NS)"
    )

    def __init__(self, inp):
        import duckdb

        self.duckdb = duckdb
        self.version = duckdb.__version__
        self.inp = inp
        self.base = PyarrowByHand(inp)

    def open_store(self, store):
        self.base.open_store(store)
        self.file = os.path.join(self.base.dir, "part-000000.parquet")
        self.con = self.duckdb.connect()

    def bulk_write(self):
        # Setup only (never timed): the same file pyarrow-by-hand W1 writes.
        self.base.bulk_write()

    def read_range(self):
        params = [self.file, self.inp.start, self.inp.end]
        # con.sql(...).to_arrow_table() hands Arrow over without the extra
        # copy the DB-API cursor path makes (DuckDB warns about that one).
        return self.con.sql(self.QUERY, params=params).to_arrow_table()

    def count(self):
        return self.base.count()

    def facts(self):
        return {}

    def close(self):
        self.con.close()


SYSTEMS = {c.name: c for c in (PyarrowByHand, ArcticLmdb, Delta, DuckDB)}


# --------------------------------------------------------------------------
# harness


class Recorder:
    def __init__(self, path):
        self.path = path
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)

    def emit(self, rec):
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def ok(self, system, workload, times, extra):
        rec = {
            "system": system,
            "workload": workload,
            "median_s": statistics.median(times),
            "runs": len(times),
            "extra": extra,
        }
        self.emit(rec)
        log(f"[{system}] {workload}: median {rec['median_s']:.6f} s over {len(times)} run(s)")

    def error(self, system, workload, msg):
        self.emit({"system": system, "workload": workload, "error": msg})
        log(f"[{system}] {workload}: ERROR {msg}")


def timed(fn):
    # Collect garbage left by the previous step so a GC pause does not land
    # inside someone else's timer.
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def w2_extra(times):
    # The first/last 10% medians show whether appends slow down as the store
    # grows (file count, log length, index size), which the overall median hides.
    n10 = max(1, math.ceil(len(times) * 0.1))
    return {
        "p90_s": float(np.percentile(times, 90)),
        "first10_median_s": statistics.median(times[:n10]),
        "last10_median_s": statistics.median(times[-n10:]),
        "min_s": min(times),
        "max_s": max(times),
        "total_s": sum(times),
    }


def verify_w4(inp, result):
    if hasattr(result, "num_rows"):  # pyarrow.Table
        n = result.num_rows
        ts = as_ns(result["ts"])
    else:  # pandas.DataFrame indexed by ts
        n = len(result)
        ts = result.index.asi8
    check(n == inp.w4_rows, f"W4 returned {n} rows, expected {inp.w4_rows}")
    check(
        int(ts[0]) == inp.start_ns and int(ts[-1]) == inp.end_ns - 60 * 10**9,
        "W4 returned the wrong range",
    )


def verify_w3(inp, s):
    n = s.count()
    check(n == inp.rows, f"row count after upsert is {n}, expected {inp.rows} (unchanged)")
    got = s.rows_at(inp.w3["ts"])
    got = got.sort_by("ts")
    want = inp.w3
    check(got.num_rows == want.num_rows, f"{got.num_rows} rows at the upserted ts, expected {want.num_rows}")
    check(np.array_equal(as_ns(got["ts"]), as_ns(want["ts"])), "upserted ts values differ")
    for c in ("a", "b", "c", "d", "n"):
        check(
            np.array_equal(got[c].to_numpy(), want[c].to_numpy()),
            f"column {c} does not hold the upserted values",
        )


class Skip(Exception):
    pass


def close(s):
    # Best effort: a store that failed half-way may not have the handles
    # close() expects, and that must not stop the remaining systems.
    try:
        s.close()
    except Exception as e:
        log(f"[{s.name}] close failed: {type(e).__name__}: {e}")


def run_system(name, inp, args, rec):
    cls = SYSTEMS[name]
    log(f"== {name}")
    try:
        s = cls(inp)
    except Exception as e:
        for w in cls.workloads:
            rec.error(name, w, f"setup failed: {type(e).__name__}: {e}")
        traceback.print_exc()
        return
    base = {"version": s.version, "rows": inp.rows}

    def attempt(workload, fn):
        try:
            fn()
        except Skip as e:
            rec.error(name, workload, str(e))
        except Exception as e:
            traceback.print_exc()
            rec.error(name, workload, f"{type(e).__name__}: {e}")

    # ---- W1 state: W1, then W4 on it, then W2 on top of it
    store = tempfile.mkdtemp(prefix=name + "-w1-", dir=args.work)
    w1_error = []
    try:
        s.open_store(store)
        dt, _ = timed(s.bulk_write)
        n = s.count()
        check(n == inp.rows, f"row count after W1 is {n}, expected {inp.rows}")
        if "W1" in cls.workloads:
            extra = dict(base, store_bytes=tree_bytes(store), durability=s.durability, **s.facts())
            rec.ok(name, "W1", [dt], extra)
    except Exception as e:
        traceback.print_exc()
        w1_error.append(f"{type(e).__name__}: {e}")
        if "W1" in cls.workloads:
            rec.error(name, "W1", w1_error[0])

    def need_w1():
        if w1_error:
            raise Skip(f"skipped: W1 state could not be built ({w1_error[0]})")

    def w4():
        need_w1()
        times = []
        for _ in range(args.repeat):
            dt, out = timed(s.read_range)
            verify_w4(inp, out)
            times.append(dt)
            result_type = type(out).__module__.split(".")[0] + "." + type(out).__name__
            del out  # free it before the next timed read
        extra = dict(
            base,
            rows_returned=inp.w4_rows,
            min_s=min(times),
            max_s=max(times),
            result_type=result_type,
            cache="warm (the same range is read repeatedly)",
        )
        rec.ok(name, "W4", times, extra)

    def w2():
        need_w1()
        k = len(inp.w2)
        if k == 0:
            raise Skip("skipped: no day files (--appends 0)")
        before = tree_bytes(store)
        times = []
        for i in range(k):
            dt, _ = timed(lambda: s.append(i))
            times.append(dt)
        n = s.count()
        check(n == inp.rows + k * DAY_ROWS, f"row count after {k} appends is {n}, expected {inp.rows + k * DAY_ROWS}")
        after = tree_bytes(store)
        extra = dict(base, appends=k, rows_per_append=DAY_ROWS, bytes_added=after - before, store_bytes=after)
        extra.update(w2_extra(times))
        extra.update(s.facts())
        rec.ok(name, "W2", times, extra)

    if "W4" in cls.workloads:
        attempt("W4", w4)
    if "W2" in cls.workloads:
        attempt("W2", w2)
    close(s)
    if not args.keep:
        shutil.rmtree(store, ignore_errors=True)

    # ---- W3 on a fresh W1 state, so it does not depend on how many appends ran
    if "W3" in cls.workloads:
        store = tempfile.mkdtemp(prefix=name + "-w3-", dir=args.work)

        def w3():
            try:
                s.open_store(store)
                s.bulk_write()
            except Exception as e:
                traceback.print_exc()
                raise Skip(f"W1 setup for W3 failed: {type(e).__name__}: {e}") from e
            before = tree_bytes(store)
            dt, _ = timed(s.upsert)
            verify_w3(inp, s)
            after = tree_bytes(store)
            extra = dict(base, upsert_rows=inp.w3.num_rows, bytes_added=after - before, store_bytes=after)
            extra.update(s.facts())
            rec.ok(name, "W3", [dt], extra)

        attempt("W3", w3)
        close(s)
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)


# ---- W6 (history) on ArcticDB, for comparison with `tarn-bench history`

W6_T0 = np.datetime64("2020-01-01T00:00:00", "ns")
W6_FIRST_DAYS = 7
W6_HOURS = 6


def w6_frame(pd, first_minute, n):
    """Minutes [first, first + n) after 2020-01-01 in W1's columns, indexed by ts."""
    m = np.arange(first_minute, first_minute + n, dtype=np.int64)
    rng = np.random.default_rng(int(first_minute))
    idx = pd.DatetimeIndex(W6_T0 + m * np.timedelta64(60, "s"), name="ts").tz_localize("UTC")
    cols = {c: rng.standard_normal(n) for c in "abcd"}
    cols["n"] = rng.integers(0, 1 << 24, n, dtype=np.int64)
    return pd.DataFrame(cols, index=idx)


def arctic_history(versions, args, rec):
    """ArcticDB with `versions` versions of one symbol (one week, then appends of 6 hours,
    the shape of tarn's W6 without its upserts and deletes): `list_versions`, and a read of
    the first week at the first, middle and last version (`as_of`). ArcticDB keeps every
    version unless asked to prune (`prune_previous_versions` defaults to False)."""
    import arcticdb
    import pandas as pd
    from arcticdb import Arctic

    name = ArcticLmdb.name
    base = {"version": arcticdb.__version__, "versions": versions}
    store = tempfile.mkdtemp(prefix=f"{name}-w6-{versions}-", dir=args.work)
    try:
        ac = Arctic("lmdb://" + os.path.join(store, "lmdb"))
        lib = ac.get_library("bench", create_if_missing=True)
        step = W6_HOURS * 60
        frames = [w6_frame(pd, W6_FIRST_DAYS * 1440 + i * step, step) for i in range(versions - 1)]
        first = w6_frame(pd, 0, W6_FIRST_DAYS * 1440)
        t0 = time.perf_counter()
        lib.write("h", first)
        appends = []
        for f in frames:
            # Not timed(): a gc.collect() per append would dominate the setup time.
            a = time.perf_counter()
            lib.append("h", f)
            appends.append(time.perf_counter() - a)
        setup = time.perf_counter() - t0
        n10 = max(1, len(appends) // 10)
        rec.ok(
            name,
            f"W6 setup ({versions:,} versions)",
            [setup],
            dict(
                base,
                target="for information",
                append_median_s=statistics.median(appends),
                append_first10_median_s=statistics.median(appends[:n10]),
                append_last10_median_s=statistics.median(appends[-n10:]),
                durability=ArcticLmdb.durability,
            ),
        )
        week = (pd.Timestamp(W6_T0, tz="UTC"), pd.Timestamp(W6_T0 + np.timedelta64(W6_FIRST_DAYS * 1440 - 1, "m"), tz="UTC"))
        rows = W6_FIRST_DAYS * 1440
        middle = versions // 2
        # A time between the middle version's write and the next one's: as_of with a
        # time has to walk the version chain (ArcticDB issues #649, #1384).
        dates = {k.version: v.date for k, v in lib.list_versions("h").items()}
        mid_time = dates[middle - 1] + (dates[middle] - dates[middle - 1]) / 2
        got = lib.read("h", as_of=mid_time, date_range=week).version
        check(got == middle - 1, f"as_of=<time of v{middle}> read version {got}, expected {middle - 1}")
        cases = [
            ("list_versions", lambda: lib.list_versions("h"), versions),
            ("read first week at head", lambda: lib.read("h", date_range=week).data, rows),
            ("read first week at as_of=0 (v1)", lambda: lib.read("h", as_of=0, date_range=week).data, rows),
            (f"read first week at as_of={middle - 1} (v{middle})", lambda: lib.read("h", as_of=middle - 1, date_range=week).data, rows),
            (f"read first week at as_of=<time of v{middle}>", lambda: lib.read("h", as_of=mid_time, date_range=week).data, rows),
        ]
        times = [[] for _ in cases]
        for rnd in range(args.repeat + 1):  # round 0 is a warm-up
            for i, (label, fn, want) in enumerate(cases):
                dt, out = timed(fn)
                check(len(out) == want, f"{label}: {len(out)} entries, expected {want}")
                if rnd:
                    times[i].append(dt)
                del out
        for (label, _, want), ts in zip(cases, times):
            rec.ok(name, f"W6 {label} ({versions:,} versions)", ts, dict(base, target="for information", entries=want, min_s=min(ts), max_s=max(ts)))
    except Exception as e:
        traceback.print_exc()
        rec.error(name, f"W6 ({versions:,} versions)", f"{type(e).__name__}: {e}")
    finally:
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="directory written by bench/gen_data.py (W1-W4)")
    ap.add_argument("--work", required=True, help="scratch directory for the stores (temp dirs are made inside)")
    ap.add_argument("--results", required=True, help="jsonl file to append results to")
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--appends", type=int, default=None, help="W2 appends to run (default: all day files in DATA/w2)")
    ap.add_argument("--repeat", type=int, default=15, help="W4 repetitions (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the stores under --work for inspection")
    ap.add_argument(
        "--history-versions",
        help="run W6 on ArcticDB instead, once per count (comma-separated, e.g. 1000,2000); no --data needed",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    if args.history_versions:
        counts = [int(c) for c in args.history_versions.split(",") if c.strip()]
        if any(c < 2 for c in counts):
            ap.error("--history-versions: each count must be at least 2")
        os.makedirs(args.work, exist_ok=True)
        rec = Recorder(args.results)
        for n in counts:
            log(f"== {ArcticLmdb.name} W6, {n} versions")
            arctic_history(n, args, rec)
        return
    if not args.data:
        ap.error("--data is required (unless --history-versions)")

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        ap.error(f"unknown system(s) {unknown}; known: {', '.join(SYSTEMS)}")
    os.makedirs(args.work, exist_ok=True)

    log(f"loading inputs from {args.data}")
    inp = Inputs(args.data, args.appends)
    log(f"w1 {inp.rows} rows, {len(inp.w2)} appends, w3 {inp.w3.num_rows} rows, w4 [{inp.start}, {inp.end})")
    rec = Recorder(args.results)
    for name in systems:
        run_system(name, inp, args, rec)


if __name__ == "__main__":
    main()
