#!/usr/bin/env python3
"""Turn benchmark results (jsonl) into Markdown tables, one per workload (W1-W4), one for
W5's queries (tarn against DuckDB), one for all of W6's measurements and one for W7's
(registry validation against a full scan, a query through a mapping against DuckDB), one for
W8 (catalog scale, per backend) and one for W9 (W1-W4 per backend, with the requests of each
operation), with their targets.

Reads the lines written by bench/peers.py and by the Rust side ("tarn
(in-process)", "tarn (CLI)"), all of the form
  {"system", "workload", "median_s", "runs", "extra": {...}}  or
  {"system", "workload", "error"}
When a (system, workload) pair appears more than once, the last line wins, so
re-running one system appends a correction instead of needing a clean file.

Usage: python bench/report.py --results FILE [--out docs-table.md]
"""

import argparse
import importlib.metadata
import json
import os
import platform
import sys
from collections import OrderedDict

TARN = "tarn (in-process)"
ARCTIC = "arcticdb-lmdb"
WORKLOADS = OrderedDict(
    [
        ("W1", "W1: bulk write of w1 into an empty store (durable)"),
        ("W2", "W2: append one day (1440 rows) at a time"),
        ("W3", "W3: upsert 432 rows (dedup on ts) into the W1 state"),
        ("W4", "W4: read one week [start, end) from the W1 state (warm cache)"),
    ]
)
# Against ArcticDB too where it does the same job; for W2 it is already in
# the table and its append path is not the comparison the docs draw.
SECOND_REF = {"W1", "W3", "W4"}
ORDER = [TARN, "tarn (CLI)", "pyarrow-by-hand", ARCTIC, "deltalake", "duckdb"]
PACKAGES = ["pyarrow", "numpy", "pandas", "arcticdb", "deltalake", "duckdb"]
# Extra fields that get their own column (W2) or are shown elsewhere.
W2_COLUMNS = [("p90_s", "p90"), ("first10_median_s", "first 10% median"), ("last10_median_s", "last 10% median")]
# Shown once per table (rows) or in the heading (cache) instead of per row.
HIDDEN = {"version", "rows", "cache"}


def fmt_s(s):
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s"


def fmt_bytes(b):
    sign = "-" if b < 0 else ""
    b = abs(b)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{sign}{b:.0f} {unit}" if unit == "B" else f"{sign}{b:.1f} {unit}"
        b /= 1024


def fmt_value(key, v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if key.endswith("_s"):
            return fmt_s(v)
        if "bytes" in key:
            return fmt_bytes(v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return f"{v:,}"
    return str(v)


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return "–"
    return f"{num / den:.2f}×"


def cell(s):
    # A "|" inside a cell would end the cell in Markdown.
    return str(s).replace("|", "\\|").replace("\n", " ")


def load(path):
    latest = OrderedDict()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                key = (rec["system"], rec["workload"])
            except (ValueError, KeyError, TypeError) as e:
                print(f"warning: {path}:{lineno}: skipping unreadable line ({e})", file=sys.stderr)
                continue
            latest.pop(key, None)
            latest[key] = rec
    return latest


def system_order(names):
    known = [s for s in ORDER if s in names]
    return known + sorted(n for n in names if n not in ORDER)


def table(workload, recs):
    by_sys = {r["system"]: r for r in recs}
    med = {s: r.get("median_s") for s, r in by_sys.items() if "error" not in r}
    refs = [TARN] + ([ARCTIC] if workload in SECOND_REF else [])
    head = ["system", "median"] + [f"vs {r}" for r in refs] + ["runs"]
    if workload == "W2":
        head += [label for _, label in W2_COLUMNS] + ["last/first 10%"]
    head.append("details")
    rows = []
    for s in system_order(by_sys):
        r = by_sys[s]
        if "error" in r:
            rows.append([s, "**error**"] + ["–"] * (len(head) - 3) + [cell(r["error"])])
            continue
        extra = r.get("extra") or {}
        row = [s, fmt_s(r.get("median_s"))] + [ratio(med.get(s), med.get(ref)) for ref in refs]
        row.append(str(r.get("runs", "–")))
        shown = set(HIDDEN)
        if workload == "W2":
            for key, _ in W2_COLUMNS:
                row.append(fmt_s(extra.get(key)))
                shown.add(key)
            row.append(ratio(extra.get("last10_median_s"), extra.get("first10_median_s")))
        details = ", ".join(f"{k}={fmt_value(k, v)}" for k, v in extra.items() if k not in shown)
        row.append(cell(details))
        rows.append(row)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


W6_TITLE = "W6: history (issue 3): refs, old versions and log on one dataset with a long history"
# Shown in their own columns, or not at all, in the W6 table.
W6_SHOWN = HIDDEN | {"target", "target_s", "met", "versions", "min_s", "max_s", "timed", "cache"}


def is_w6(workload):
    return workload.startswith("W6")


def w6_table(recs):
    """One row per measurement: name, system, median, target, met?, details."""
    versions = OrderedDict()
    for r in recs:
        n = (r.get("extra") or {}).get("versions")
        if n is not None:
            versions.setdefault(r["system"], set()).add(n)
    out = []
    if versions:
        counts = "; ".join(f"{s} {', '.join(f'{n:,}' for n in sorted(ns))}" for s, ns in versions.items())
        out += ["versions of the dataset: " + counts, ""]
    head = ["measurement", "system", "median", "target", "met?", "runs", "details"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in recs:
        name = r["workload"][len("W6"):].strip()
        if "error" in r:
            row = [name, r["system"], "**error**", "–", "–", "–", cell(r["error"])]
        else:
            extra = r.get("extra") or {}
            met = extra.get("met")
            target = extra.get("target", "–")
            details = ", ".join(f"{k}={fmt_value(k, v)}" for k, v in extra.items() if k not in W6_SHOWN)
            row = [
                name,
                r["system"],
                fmt_s(r.get("median_s")),
                cell(target),
                "–" if met is None else ("yes" if met else "**no**"),
                str(r.get("runs", "–")),
                cell(details),
            ]
        out.append("| " + " | ".join(row) + " |")
    return out


W5_TITLE = "W5: SQL (issue 4): tarn (DataFusion) and DuckDB on the very same Parquet files"
W5_TARN_ONE = "tarn (in-process, one engine)"


def is_w5(workload):
    return workload.startswith("W5")


def w5_table(recs):
    """One row per query: tarn's median (new session per run), DuckDB's, the ratio against
    the target, and tarn with one QueryEngine (shared metadata cache) for all runs."""
    by_query = OrderedDict()
    for r in recs:
        by_query.setdefault(r["workload"], {})[r["system"]] = r
    head = ["query", "tarn", "DuckDB", "tarn / DuckDB", "target", "met?", "tarn, one engine (/ DuckDB)", "details"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for w in sorted(by_query):
        systems = by_query[w]
        tarn, duck, one = systems.get(TARN), systems.get("duckdb"), systems.get(W5_TARN_ONE)
        ok = lambda r: r is not None and "error" not in r
        extra = (tarn or {}).get("extra") or (duck or {}).get("extra") or {}
        name = extra.get("query", w)
        errors = [f"{r['system']}: {r['error']}" for r in (tarn, duck, one) if r is not None and "error" in r]
        t_med = tarn.get("median_s") if ok(tarn) else None
        d_med = duck.get("median_s") if ok(duck) else None
        o_med = one.get("median_s") if ok(one) else None
        target = extra.get("target", "–")
        met = "–"
        if t_med is not None and d_med is not None:
            limit = (tarn.get("extra") or {}).get("met")
            met = "yes" if limit else "**no**"
        details = []
        if ok(tarn):
            te = tarn.get("extra") or {}
            details.append(f"tarn plan {fmt_s(te.get('plan_median_s'))}")
            details.append(f"runs {tarn.get('runs')}")
        for key, label in (("input_rows", "rows"), ("files", "files"), ("row_groups", "row groups"), ("result_rows", "groups")):
            if key in extra:
                details.append(f"{label} {extra[key]:,}")
        if "settings" in ((tarn or {}).get("extra") or {}):
            details.append(f"settings {tarn['extra']['settings']}")
        details += errors
        row = [
            cell(name),
            fmt_s(t_med) if ok(tarn) else "**error**" if tarn else "–",
            fmt_s(d_med) if ok(duck) else "**error**" if duck else "–",
            ratio(t_med, d_med),
            cell(target),
            met,
            (f"{fmt_s(o_med)} ({ratio(o_med, d_med)})" if o_med is not None else "–"),
            cell(", ".join(details)),
        ]
        out.append("| " + " | ".join(row) + " |")
    return out


W7_TITLE = "W7: registry (issue 5): validation against a full scan, a query through a mapping against DuckDB"
W7_ORDER = ["W7 read", "W7 scan", "W7 county", "W7 validate", "W7 query"]
# Shown in their own columns, or not at all, in the W7 table.
W7_SHOWN = HIDDEN | {"target", "met", "ratio", "reference", "reference_median_s", "measures", "sql", "settings", "min_s", "max_s"}
# The same for every measurement: shown once, above the table.
W7_COMMON = [
    ("input_rows", "dataset rows"),
    ("files", "files"),
    ("row_groups", "row groups"),
    ("counties", "county records"),
    ("partitions", "tarn partitions"),
    ("setup_write_s", "setup: write"),
    ("setup_register_dataset_s", "setup: register_dataset (county and sector)"),
]


def is_w7(workload):
    return workload.startswith("W7")


def w7_table(recs):
    """One row per measurement and system: the median, what it is compared with (the full
    scan for validation, DuckDB for the query), the ratio against the target."""
    out = []
    first = next(((r.get("extra") or {}) for r in recs if r["system"] == TARN and "error" not in r), {})
    facts = [f"{label} {fmt_value(key, first[key])}" for key, label in W7_COMMON if key in first]
    if facts:
        out += ["; ".join(facts), ""]
    head = ["measurement", "system", "median", "compared with", "ratio", "target", "met?", "runs", "details"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    rank = lambda r: (W7_ORDER.index(r["workload"]) if r["workload"] in W7_ORDER else len(W7_ORDER), r["workload"], r["system"] != TARN)
    for r in sorted(recs, key=rank):
        name = r["workload"][len("W7"):].strip()
        if "error" in r:
            out.append("| " + " | ".join([name, r["system"], "**error**", "–", "–", "–", "–", "–", cell(r["error"])]) + " |")
            continue
        extra = r.get("extra") or {}
        ref = extra.get("reference")
        ref_s = extra.get("reference_median_s")
        met = extra.get("met")
        details = [f"{extra['measures']}"] if "measures" in extra else []
        common = {k for k, _ in W7_COMMON}
        details += [f"{k}={fmt_value(k, v)}" for k, v in extra.items() if k not in W7_SHOWN and k not in common]
        row = [
            name,
            r["system"],
            fmt_s(r.get("median_s")),
            f"{ref} ({fmt_s(ref_s)})" if ref else "–",
            f"{extra['ratio']:.2f}×" if isinstance(extra.get("ratio"), (int, float)) else "–",
            cell(extra.get("target", "–")),
            "–" if met is None else ("yes" if met else "**no**"),
            str(r.get("runs", "–")),
            cell(", ".join(details)),
        ]
        out.append("| " + " | ".join(row) + " |")
    return out


W8_TITLE = "W8: catalog scale (issue 10): 1,000,000 datasets in one lake, next to a lake of one"
W9_TITLE = "W9: W1–W4 on the shared backends (issue 10), durable, with the requests of each operation"
LOCAL = "tarn (SQLite + local)"
REMOTE = "tarn (PostgreSQL + S3)"
POSTGRES = "tarn (PostgreSQL + local)"
BACKENDS = [LOCAL, POSTGRES, REMOTE]


def is_w8(workload):
    return workload.startswith("W8")


def is_w9(workload):
    return workload.startswith("W9")


def w8_name(workload):
    """'W8 tarn info (1000000 datasets)' -> ('tarn info', '1000000 datasets')."""
    name = workload[len("W8"):].strip()
    if name.endswith(")") and " (" in name:
        base, tag = name[:-1].rsplit(" (", 1)
        return base, tag
    return name, ""


def w8_table(recs):
    """One row per measurement, one column per backend; creations as a rate, the rest as
    medians, with the issue's targets (≥ 1,000 durable creations/s, ls ≤ 50 ms, info and the
    week read on the full lake ≤ 1.2× the one-dataset lake)."""
    by = {}
    for r in recs:
        by.setdefault(r["workload"], {})[r["system"]] = r
    backends = [b for b in BACKENDS if any(b in v for v in by.values())]
    head = ["measurement"] + [f"{b}" for b in backends] + ["target"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]

    def value(r):
        if r is None:
            return "–"
        if "error" in r:
            return "**error**: " + cell(r["error"])
        extra = r.get("extra") or {}
        if "per_second" in extra:
            return f"{extra['per_second']:,.0f}/s ({extra['datasets']:,} datasets)"
        return f"{fmt_s(r.get('median_s'))} ({r.get('runs')} runs)"

    def target(workload):
        base, tag = w8_name(workload)
        cells = []
        for b in backends:
            r = by[workload].get(b)
            if r is None or "error" in r:
                cells.append("–")
                continue
            extra = r.get("extra") or {}
            if "per_second" in extra and "durable" in base:
                ok = extra["per_second"] >= 1000
                cells.append(f"≥ 1,000/s: {'met' if ok else 'missed'}")
            elif "ls PREFIX" in base:
                ok = r["median_s"] <= 0.050
                cells.append(f"≤ 50 ms: {'met' if ok else 'missed'}")
            elif tag.endswith("datasets") and tag != "1 dataset":
                one = by.get(f"W8 {base} (1 dataset)", {}).get(b)
                if one and "error" not in one and one.get("median_s"):
                    q = r["median_s"] / one["median_s"]
                    cells.append(f"{q:.2f}× the 1-dataset lake (≤ 1.2×: {'met' if q <= 1.2 else 'missed'})")
                else:
                    cells.append("–")
            else:
                cells.append("")
        if all(c == "" for c in cells):
            return ""
        return "; ".join(f"{b.split('(')[1].rstrip(')')}: {c}" for b, c in zip(backends, cells) if c)

    for w in sorted(by, key=lambda w: (not "create" in w, w8_name(w)[1] != "1 dataset", w)):
        name = w[len("W8"):].strip()
        out.append("| " + " | ".join([cell(name)] + [value(by[w].get(b)) for b in backends] + [cell(target(w))]) + " |")
    return out


W9_COSTS = [
    ("catalog_round_trips", "catalog round trips"),
    ("store_put", "PUT"),
    ("store_get", "GET"),
    ("store_head", "HEAD"),
    ("store_list", "LIST"),
    ("store_delete", "DELETE"),
]


def w9_cost(r):
    per = (r.get("extra") or {}).get("per_operation") or {}
    parts = []
    for key, label in W9_COSTS:
        v = per.get(key)
        if v is None:
            continue
        if v or key == "catalog_round_trips":
            parts.append(f"{v:g} {label}")
    return ", ".join(parts) if parts else "–"


def w9_table(recs):
    by = {}
    for r in recs:
        by.setdefault(r["workload"], {})[r["system"]] = r
    order = ["W9 W1 bulk write", "W9 W2 append", "W9 W3 upsert", "W9 W4 one-week read"]
    backends = [b for b in BACKENDS if any(b in v for v in by.values())]
    head = ["workload"] + backends + ["remote / local"] + [f"requests per operation, {b.split('(')[1].rstrip(')')}" for b in backends]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for w in sorted(by, key=lambda w: (order.index(w) if w in order else len(order), w)):
        row = [w[len("W9"):].strip()]
        med = {}
        for b in backends:
            r = by[w].get(b)
            if r is None:
                row.append("–")
            elif "error" in r:
                row.append("**error**: " + cell(r["error"]))
            else:
                med[b] = r.get("median_s")
                row.append(f"{fmt_s(r.get('median_s'))} ({r.get('runs')} runs)")
        row.append(ratio(med.get(REMOTE), med.get(LOCAL)))
        for b in backends:
            r = by[w].get(b)
            row.append(w9_cost(r) if r and "error" not in r else "–")
        out.append("| " + " | ".join(cell(c) for c in row) + " |")
    durability = {b: (by[w].get(b) or {}).get("extra", {}).get("durability") for w in by for b in backends}
    notes = [f"- {b}: {d}" for b, d in durability.items() if d]
    if notes:
        out += ["", "Durability:"] + notes
    return out


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine_facts(latest):
    cpuinfo = read_file("/proc/cpuinfo")
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), platform.processor() or "unknown")
    mem = next((l.split(":", 1)[1].strip() for l in read_file("/proc/meminfo").splitlines() if l.startswith("MemTotal")), "unknown")
    if mem.endswith(" kB"):
        mem = f"{int(mem[:-3]) / 1024 / 1024:.1f} GiB"
    osname = next(
        (l.split("=", 1)[1].strip('"') for l in read_file("/etc/os-release").splitlines() if l.startswith("PRETTY_NAME=")),
        platform.system(),
    )
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    lines = [
        "## Machine",
        "",
        f"- nproc: {nproc}",
        f"- CPU: {model}",
        f"- memory: {mem}",
        f"- OS: {osname}, kernel {platform.release()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
    ]
    pkgs = []
    for p in PACKAGES:
        try:
            pkgs.append(f"{p} {importlib.metadata.version(p)}")
        except importlib.metadata.PackageNotFoundError:
            pkgs.append(f"{p} (not installed in this interpreter)")
    lines.append("- Python packages (this interpreter): " + ", ".join(pkgs))
    # The run may have used another interpreter than the one making the
    # report, so also show what each system recorded about itself.
    recorded = OrderedDict()
    for (system, _), rec in latest.items():
        v = (rec.get("extra") or {}).get("version")
        if v is not None:
            recorded[system] = v
    if recorded:
        lines.append("- versions recorded in the results: " + ", ".join(f"{s} {v}" for s, v in recorded.items()))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="jsonl results file")
    ap.add_argument("--out", help="also write the Markdown to this file")
    args = ap.parse_args(argv)

    latest = load(args.results)
    if not latest:
        sys.exit(f"no results in {args.results}")

    lines = [
        "# tarn benchmark results",
        "",
        f"Source: `{args.results}`. Times are medians of the runs column. A ratio is "
        "this system's median divided by the reference's: above 1× means slower "
        "than the reference.",
        "",
    ]
    others = {w for _, w in latest} - set(WORKLOADS)
    workloads = list(WORKLOADS) + sorted(
        w for w in others if not any(f(w) for f in (is_w5, is_w6, is_w7, is_w8, is_w9))
    )
    for w in workloads:
        recs = [r for (s, wl), r in latest.items() if wl == w]
        if not recs:
            continue
        lines += [f"## {WORKLOADS.get(w, w)}", ""]
        sizes = sorted({(r.get("extra") or {}).get("rows") for r in recs} - {None})
        if sizes:
            lines += ["w1 rows: " + ", ".join(f"{n:,}" for n in sizes), ""]
        lines += table(w, recs) + [""]
    w5 = [r for (_, wl), r in latest.items() if is_w5(wl)]
    if w5:
        lines += [f"## {W5_TITLE}", ""] + w5_table(w5) + [""]
    w6 = [r for (_, wl), r in latest.items() if is_w6(wl)]
    if w6:
        lines += [f"## {W6_TITLE}", ""] + w6_table(w6) + [""]
    w7 = [r for (_, wl), r in latest.items() if is_w7(wl)]
    if w7:
        lines += [f"## {W7_TITLE}", ""] + w7_table(w7) + [""]
    w8 = [r for (_, wl), r in latest.items() if is_w8(wl)]
    if w8:
        lines += [f"## {W8_TITLE}", ""] + w8_table(w8) + [""]
    w9 = [r for (_, wl), r in latest.items() if is_w9(wl)]
    if w9:
        lines += [f"## {W9_TITLE}", ""] + w9_table(w9) + [""]
    lines += machine_facts(latest)
    text = "\n".join(lines) + "\n"

    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
