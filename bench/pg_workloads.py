"""Python side of the PostgreSQL load benchmark (bench/pg_load.py).

Runs inside bench/.venv-pg (DuckDB 1.4.4 with its postgres extension, pandas, SQLAlchemy,
psycopg2, pyarrow; pinned in bench/requirements-pg.txt). bench/pg_load.py starts one
process per measured run, so each timing includes interpreter start-up and the imports,
as etl's includes its own process start-up.

    python pg_workloads.py prepare --data-dir D --rows N --delta M --small K --row-group R
    python pg_workloads.py duckdb  --dsn 'host=... port=... dbname=...' --file F --table S.T
    python pg_workloads.py pandas  --url postgresql+psycopg2://... --file F --table S.T
    python pg_workloads.py watch   --dsn DSN --out FILE   # until SIGTERM: COPY progress, waits
    python pg_workloads.py version        # JSON: the versions of everything above

`prepare` turns the generated sales.csv into the Parquet files the loads read (one file,
rowid-sorted, zstd, row groups of --row-group rows), the "grown" file for the incremental
rerun, the CSV of just the new rows, a small file for pandas, and the checksums every
loaded table must match.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
from pathlib import Path

from generate import SALES_COLUMNS  # bench/generate.py, beside this file

# Checksums of a set of sales rows. The same expressions run in PostgreSQL on every loaded
# table (bench/pg_load.py, CHECK_SQL); values are compared as exact integers/decimals.
CHECK_SQL = """
    SELECT count(*)                                AS rows,
           CAST(sum(rowid) AS VARCHAR)             AS sum_rowid,
           CAST(sum(price * quantity) AS VARCHAR)  AS sum_revenue,
           CAST(sum(price) AS VARCHAR)             AS sum_price,
           CAST(sum(customer_id) AS VARCHAR)       AS sum_customer_id,
           CAST(sum(product_id) AS VARCHAR)        AS sum_product_id,
           CAST(sum(quantity) AS VARCHAR)          AS sum_quantity,
           strftime(min(ts), '%Y-%m-%d %H:%M:%S')  AS min_ts,
           strftime(max(ts), '%Y-%m-%d %H:%M:%S')  AS max_ts
    FROM {src}
"""


def lit(s: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


# ------------------------------------------------------------------------------ prepare


def prepare(data_dir: Path, rows: int, delta: int, small: int, row_group: int) -> dict:
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    cols = ", ".join(f"{lit(k)}: {lit(v)}" for k, v in SALES_COLUMNS.items())
    csv = data_dir / "sales.csv"
    con.execute(
        "CREATE TEMP VIEW sales AS SELECT * FROM "
        f"read_csv({lit(csv)}, header = true, delim = ',', columns = {{{cols}}})"
    )
    # The new rows of the grown file: rowid continues, ts continues on 2025-01-01, the other
    # columns are drawn from the same ranges as generate.py's (deterministic: hash of rowid).
    con.execute(f"""
        CREATE TEMP VIEW delta AS
        SELECT CAST(r AS BIGINT) AS rowid,
               CAST(TIMESTAMP '2025-01-01 00:00:00'
                    + to_seconds(CAST(((r - {rows} - 1) * 86400) // {delta} AS BIGINT))
                    AS TIMESTAMP) AS ts,
               CAST(hash(r * 3 + 1) % 100000 + 1 AS INTEGER) AS customer_id,
               CAST(hash(r * 5 + 2) % 5000 + 1 AS INTEGER) AS product_id,
               CAST(hash(r * 7 + 3) % 10 + 1 AS INTEGER) AS quantity,
               CAST((hash(r * 11 + 4) % 49951 + 50) / 100 AS DECIMAL(10,2)) AS price
        FROM range({rows} + 1, {rows} + {delta} + 1) t(r)
    """)
    outputs = {
        "sales.parquet": "SELECT * FROM sales ORDER BY rowid",
        "sales_grown.parquet":
            "SELECT * FROM (SELECT * FROM sales UNION ALL SELECT * FROM delta) ORDER BY rowid",
        "sales_small.parquet": f"SELECT * FROM sales WHERE rowid <= {small} ORDER BY rowid",
    }
    for name, query in outputs.items():
        # pyarrow writes row groups of exactly --row-group rows (DuckDB's writer rounds them
        # to its vector size), so the grown file's new rows start a row group of their own.
        tmp = data_dir / f".{name}.tmp"
        pq.write_table(con.execute(query).fetch_arrow_table(), tmp,
                       row_group_size=row_group, compression="zstd")
        os.replace(tmp, data_dir / name)
    tmp = data_dir / ".delta.csv.tmp"
    con.execute(
        "COPY (SELECT rowid, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts, customer_id, "
        f"product_id, quantity, price FROM delta ORDER BY rowid) TO {lit(tmp)} "
        "(FORMAT csv, HEADER true)"
    )
    os.replace(tmp, data_dir / "delta.csv")

    def check(src: str) -> dict:
        cur = con.execute(CHECK_SQL.format(src=src))
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone()))

    def groups(name: str) -> list[int]:
        return [r[0] for r in con.execute(
            "SELECT row_group_num_rows FROM parquet_metadata(?) "
            "GROUP BY row_group_id, row_group_num_rows ORDER BY row_group_id",
            [str(data_dir / name)]).fetchall()]

    rp = lambda name: f"read_parquet({lit(data_dir / name)})"  # noqa: E731
    return {
        "checks": {
            "full": check(rp("sales.parquet")),
            "grown": check(rp("sales_grown.parquet")),
            "small": check(rp("sales_small.parquet")),
            "delta": check(f"read_csv({lit(data_dir / 'delta.csv')}, header = true, "
                           f"columns = {{{cols}}})"),
        },
        "row_groups": {n: groups(n) for n in outputs},
    }


# ------------------------------------------------------------------------------- loads


def duckdb_load(dsn: str, file: Path, table: str) -> None:
    """DuckDB's postgres extension: CREATE TABLE pg.S.T AS SELECT * FROM read_parquet(F)."""
    import duckdb

    ext_dir = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions")
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET extension_directory = {lit(ext_dir)}")
    con.execute("LOAD postgres")
    con.execute(f"ATTACH {lit(dsn)} AS pg (TYPE postgres)")
    schema, name = table.split(".")
    con.execute(f'CREATE TABLE pg."{schema}"."{name}" AS SELECT * FROM read_parquet({lit(file)})')


def pandas_load(url: str, file: Path, table: str, chunksize: int) -> None:
    """What a pandas user writes: read the file, to_sql(method="multi")."""
    import pandas as pd
    from sqlalchemy import create_engine
    from sqlalchemy.types import BigInteger, DateTime, Integer, Numeric

    schema, name = table.split(".")
    df = pd.read_parquet(file)
    engine = create_engine(url)
    # The decimals arrive as Python Decimal objects; say their SQL type, as a user would,
    # so that the table has the same column types as the other engines'.
    dtype = {"rowid": BigInteger(), "ts": DateTime(), "customer_id": Integer(),
             "product_id": Integer(), "quantity": Integer(), "price": Numeric(10, 2)}
    df.to_sql(name, engine, schema=schema, if_exists="fail", index=False,
              method="multi", chunksize=chunksize, dtype=dtype)
    engine.dispose()


def watch(dsn: str, out: Path, interval: float) -> None:
    """Until SIGTERM: every `interval` seconds, one JSON line with the wall-clock time, the
    progress of every COPY (pg_stat_progress_copy) and the state and wait event of every
    other client backend (pg_stat_activity). For bench/pg_load.py --watch."""
    import signal
    import time

    import psycopg2

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    con = psycopg2.connect(dsn)
    con.autocommit = True
    cur = con.cursor()
    me = con.get_backend_pid()
    with open(out, "w") as f:
        print("ready", flush=True)
        while not stop:
            cur.execute("SELECT pid, bytes_processed, tuples_processed "
                        "FROM pg_stat_progress_copy")
            copy = cur.fetchall()
            cur.execute(
                "SELECT pid, coalesce(wait_event_type || ':' || wait_event, 'CPU'), state, "
                "left(query, 40) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> %s", (me,))
            act = cur.fetchall()
            f.write(json.dumps({"t": time.time(), "copy": copy, "backends": act}) + "\n")
            time.sleep(interval)
    con.close()


def versions() -> dict:
    from importlib.metadata import version

    out = {}
    for pkg in ("duckdb", "duckdb-ext-postgres", "pandas", "SQLAlchemy", "psycopg2-binary",
                "pyarrow", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            out[pkg] = None
    import duckdb

    out["duckdb_threads"] = int(
        duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Python side of bench/pg_load.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--delta", type=int, required=True)
    p.add_argument("--small", type=int, required=True)
    p.add_argument("--row-group", type=int, required=True)
    p = sub.add_parser("duckdb")
    p.add_argument("--dsn", required=True)
    p.add_argument("--file", type=Path, required=True)
    p.add_argument("--table", required=True)
    p = sub.add_parser("pandas")
    p.add_argument("--url", required=True)
    p.add_argument("--file", type=Path, required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--chunksize", type=int, default=10_000)
    p = sub.add_parser("watch")
    p.add_argument("--dsn", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--interval", type=float, default=0.02)
    sub.add_parser("version")
    args = ap.parse_args(argv)

    if args.cmd == "prepare":
        print(json.dumps(prepare(args.data_dir, args.rows, args.delta, args.small,
                                 args.row_group), default=str))
    elif args.cmd == "duckdb":
        duckdb_load(args.dsn, args.file, args.table)
    elif args.cmd == "pandas":
        pandas_load(args.url, args.file, args.table, args.chunksize)
    elif args.cmd == "watch":
        watch(args.dsn, args.out, args.interval)
    else:
        print(json.dumps(versions()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
