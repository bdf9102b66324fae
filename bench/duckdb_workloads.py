"""DuckDB side of the benchmark, and the output checker for both engines.

Runs inside bench/.venv (which has the `duckdb` package); bench/run.py starts one
process per measured run, so each timing includes interpreter start-up and
`import duckdb`, as etl's includes its own process start-up.

    python duckdb_workloads.py csv_to_parquet --data-dir D --out-dir O
    python duckdb_workloads.py rollup         --data-dir D --out-dir O
    python duckdb_workloads.py inspect WORKLOAD PATH     # JSON: row count and checksums
    python duckdb_workloads.py version                   # JSON: version and thread count

The SQL mirrors bench/pipelines/csv_to_parquet.yaml and bench/pipelines/rollup.yaml;
change them together. DuckDB runs with its defaults (threads = all cores, default
memory limit), in an in-memory database.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

from generate import SALES_COLUMNS  # bench/generate.py, beside this file

PRODUCTS_COLUMNS = {"product_id": "INTEGER", "name": "VARCHAR", "category": "VARCHAR"}
CUSTOMERS_COLUMNS = {"customer_id": "INTEGER", "name": "VARCHAR", "country": "VARCHAR"}

ROLLUP_SQL = """
WITH daily AS (
    SELECT
        CAST(date_trunc('day', s.ts) AS DATE) AS day,
        c.country,
        p.category,
        SUM(s.quantity * s.price)             AS revenue,
        CAST(SUM(s.quantity) AS BIGINT)       AS units,
        COUNT(*)                              AS orders
    FROM sales s
    JOIN products  p ON p.product_id  = s.product_id
    JOIN customers c ON c.customer_id = s.customer_id
    GROUP BY CAST(date_trunc('day', s.ts) AS DATE), c.country, p.category
)
SELECT
    day,
    country,
    category,
    revenue,
    units,
    orders,
    SUM(revenue) OVER (
        PARTITION BY country, category
        ORDER BY day
        RANGE BETWEEN INTERVAL '6 days' PRECEDING AND CURRENT ROW
    ) AS revenue_7d
FROM daily
ORDER BY country, category, day
"""


def lit(s: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def read_csv(path: Path, columns: dict[str, str]) -> str:
    cols = ", ".join(f"{lit(k)}: {lit(v)}" for k, v in columns.items())
    return f"read_csv({lit(path)}, header = true, delim = ',', columns = {{{cols}}})"


def copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    con.execute(f"COPY ({query}) TO {lit(target)} (FORMAT parquet, COMPRESSION zstd)")


def csv_to_parquet(data_dir: Path, out_dir: Path) -> None:
    con = duckdb.connect()
    query = f"SELECT * FROM {read_csv(data_dir / 'sales.csv', SALES_COLUMNS)}"
    copy_to_parquet(con, query, out_dir / "sales.parquet")


def rollup(data_dir: Path, out_dir: Path) -> None:
    con = duckdb.connect()
    for name, columns in (
        ("sales", SALES_COLUMNS),
        ("products", PRODUCTS_COLUMNS),
        ("customers", CUSTOMERS_COLUMNS),
    ):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {read_csv(data_dir / f'{name}.csv', columns)}")
    copy_to_parquet(con, ROLLUP_SQL, out_dir / "rollup.parquet")


# Checksums per workload. Every engine's output is read back by DuckDB, so the
# numbers are comparable whatever Parquet physical types the writer chose.
CHECKS = {
    "csv_to_parquet": """
        SELECT count(*)                      AS rows,
               min(rowid)                    AS min_rowid,
               max(rowid)                    AS max_rowid,
               sum(customer_id)              AS sum_customer_id,
               sum(product_id)               AS sum_product_id,
               sum(quantity)                 AS sum_quantity,
               CAST(sum(price) AS DOUBLE)    AS sum_price,
               CAST(min(CAST(ts AS TIMESTAMP)) AS VARCHAR) AS min_ts,
               CAST(max(CAST(ts AS TIMESTAMP)) AS VARCHAR) AS max_ts
        FROM {src}
    """,
    "rollup": """
        SELECT count(*)                      AS rows,
               sum(orders)                   AS sum_orders,
               sum(units)                    AS sum_units,
               CAST(sum(revenue) AS DOUBLE)  AS sum_revenue,
               CAST(sum(revenue_7d) AS DOUBLE) AS sum_revenue_7d,
               count(DISTINCT country)       AS countries,
               count(DISTINCT category)      AS categories,
               CAST(min(day) AS VARCHAR)     AS min_day,
               CAST(max(day) AS VARCHAR)     AS max_day
        FROM {src}
    """,
}


def inspect(workload: str, path: Path) -> dict:
    if path.is_dir():
        # A sink that wrote a folder of part files (possibly Hive-partitioned).
        src = f"read_parquet({lit(str(path / '**' / '*.parquet'))})"
    elif path.exists():
        src = f"read_parquet({lit(path)})"
    else:
        raise SystemExit(f"inspect: {path} does not exist")
    con = duckdb.connect()
    cur = con.execute(CHECKS[workload].format(src=src))
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    out = {}
    for k, v in zip(names, row):
        out[k] = v if isinstance(v, (int, float, str)) or v is None else str(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="DuckDB side of the etl benchmark")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("csv_to_parquet", "rollup"):
        p = sub.add_parser(name)
        p.add_argument("--data-dir", type=Path, required=True)
        p.add_argument("--out-dir", type=Path, required=True)
    p = sub.add_parser("inspect")
    p.add_argument("workload", choices=sorted(CHECKS))
    p.add_argument("path", type=Path)
    sub.add_parser("version")
    args = ap.parse_args(argv)

    if args.cmd == "version":
        threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
        print(json.dumps({"version": duckdb.__version__, "threads": int(threads)}))
    elif args.cmd == "inspect":
        print(json.dumps(inspect(args.workload, args.path)))
    else:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        {"csv_to_parquet": csv_to_parquet, "rollup": rollup}[args.cmd](args.data_dir, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
