#!/usr/bin/env python3
"""Runs the 22 TPC-H queries in DuckDB over the harness's Parquet files.

Usage: duckdb_run.py DATA_DIR QUERY_DIR OUT_DIR ITERATIONS

Writes each answer to OUT_DIR/qN.csv (header row, ISO dates, full-precision numbers) and
prints one JSON object to stdout: {"version": ..., "threads": ..., "seconds": {"q1": [..], ...}}.
Part of `cargo bench --bench tpch` (benches/tpch.rs), which compares every answer with its own.
"""
import csv
import json
import os
import sys
import time

import duckdb

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def statements(text):
    return [s.strip() for s in text.split(";") if s.strip()]


def main():
    data, queries, out, iterations = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    threads = int(os.environ.get("RUNINK_TPCH_THREADS", os.cpu_count() or 1))
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    for t in TABLES:
        path = os.path.join(data, f"{t}.parquet")
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{path}')")
    seconds = {}
    for n in range(1, 23):
        name = f"q{n}"
        with open(os.path.join(queries, f"{name}.sql")) as f:
            stmts = statements(f.read())
        times = []
        result = None
        for _ in range(iterations):
            start = time.perf_counter()
            for s in stmts:
                cur = con.execute(s)
                if cur.description is not None and not s.lower().startswith(("create", "drop")):
                    result = (cur.description, cur.fetchall())
            times.append(time.perf_counter() - start)
        seconds[name] = times
        with open(os.path.join(out, f"{name}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            desc, rows = result
            w.writerow([d[0] for d in desc])
            for row in rows:
                w.writerow(["" if v is None else v for v in row])
    print(json.dumps({"version": duckdb.__version__, "threads": threads, "seconds": seconds}))


if __name__ == "__main__":
    main()
