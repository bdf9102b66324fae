#!/usr/bin/env python3
"""Deterministic generator of the benchmark's sales dataset.

Writes three CSV files into --out (default: bench/data):

  sales.csv      rowid,ts,customer_id,product_id,quantity,price   (--rows rows)
  products.csv   product_id,name,category                         (5,000 rows)
  customers.csv  customer_id,name,country                         (100,000 rows)

and a manifest.json recording the row count, the seed and the file sizes. When a
manifest with the same row count, seed and format version is present and the files
still have the sizes it records, nothing is regenerated (use --force to override).

Standard library only. The data is a pure function of (--rows, --seed): the same
arguments give byte-identical files on any machine with CPython 3.11+.

Shape of the data
  * rowid runs 1..N; ts is non-decreasing with rowid (an append-only sales log):
    the N rows are split evenly over the 366 days of 2024 and each day's times of
    day are uniform random seconds, sorted.
  * customer_id uniform in 1..100000, product_id uniform in 1..5000,
    quantity uniform in 1..10, price uniform in 0.50..500.00 (whole cents).
  * products have one of 20 categories; customers one of 30 ISO 3166-1 alpha-2
    country codes, with a skewed (but fixed) distribution.

Speed: the sales file is produced day by day; every field comes from a
precomputed table of strings picked with Random.choices, rows are assembled with
map/zip/join (all in C), and each day's block is written with a single write().
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
from pathlib import Path

FORMAT_VERSION = 1
DEFAULT_SEED = 42
DEFAULT_ROWS = 10_000_000

N_PRODUCTS = 5_000
N_CUSTOMERS = 100_000
YEAR = 2024

# The SQL types of sales.csv's columns, as the DuckDB and PostgreSQL workloads declare them.
SALES_COLUMNS = {
    "rowid": "BIGINT",
    "ts": "TIMESTAMP",
    "customer_id": "INTEGER",
    "product_id": "INTEGER",
    "quantity": "INTEGER",
    "price": "DECIMAL(10,2)",
}

CATEGORIES = [
    "books", "music", "movies", "games", "toys", "electronics", "computers",
    "phones", "cameras", "home", "kitchen", "garden", "tools", "automotive",
    "sports", "outdoors", "clothing", "shoes", "beauty", "grocery",
]

# 30 ISO 3166-1 alpha-2 codes with relative weights (a long tail, like real traffic).
COUNTRIES = [
    ("US", 20), ("DE", 10), ("GB", 9), ("FR", 8), ("JP", 7), ("CA", 6), ("IT", 5),
    ("ES", 5), ("NL", 4), ("AU", 4), ("BR", 4), ("IN", 4), ("SE", 3), ("PL", 3),
    ("BE", 3), ("CH", 3), ("AT", 2), ("DK", 2), ("NO", 2), ("FI", 2), ("IE", 2),
    ("PT", 2), ("CZ", 2), ("MX", 2), ("KR", 2), ("SG", 1), ("NZ", 1), ("ZA", 1),
    ("GR", 1), ("HU", 1),
]

ADJECTIVES = [
    "Classic", "Compact", "Deluxe", "Eco", "Essential", "Fresh", "Grand", "Handy",
    "Lite", "Modern", "Nordic", "Premium", "Pro", "Rapid", "Smart", "Solid",
    "Sturdy", "Ultra", "Vintage", "Zen",
]
NOUNS = [
    "Adapter", "Bag", "Blender", "Bottle", "Cable", "Chair", "Charger", "Clock",
    "Cup", "Drill", "Headset", "Jacket", "Kettle", "Lamp", "Mat", "Mug", "Novel",
    "Pan", "Pen", "Puzzle", "Racket", "Shelf", "Speaker", "Tent", "Watch",
]
FIRST_NAMES = [
    "Ada", "Alan", "Alice", "Amir", "Ana", "Ben", "Carla", "Chen", "Dana", "David",
    "Elena", "Emil", "Eva", "Felix", "Grace", "Hana", "Ivan", "Jonas", "Julia", "Kai",
    "Lara", "Leo", "Lena", "Liam", "Maria", "Marco", "Mei", "Nina", "Noah", "Olga",
    "Omar", "Paul", "Priya", "Rosa", "Sam", "Sara", "Tom", "Uma", "Yuki", "Zoe",
]
LAST_NAMES = [
    "Adams", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen",
    "Ito", "Jensen", "Kim", "Lopez", "Meyer", "Novak", "Okafor", "Petrov", "Quinn",
    "Rossi", "Schmidt", "Silva", "Tanaka", "Urban", "Vargas", "Weber", "Xu",
    "Young", "Zhang", "Moreau", "Nowak", "Smith",
]

SALES_HEADER = "rowid,ts,customer_id,product_id,quantity,price\n"
PRODUCTS_HEADER = "product_id,name,category\n"
CUSTOMERS_HEADER = "customer_id,name,country\n"

# Write buffer for the output files; each day's block is one write() anyway.
WRITE_BUFFER = 8 << 20


def _sub_rng(seed: int, stream: str) -> random.Random:
    """An independent, deterministic generator per table, so the dimension tables
    do not change when only --rows changes."""
    return random.Random(f"{seed}:{stream}")


def write_products(path: Path, seed: int) -> None:
    rng = _sub_rng(seed, "products")
    lines = [PRODUCTS_HEADER]
    for pid in range(1, N_PRODUCTS + 1):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {pid:04d}"
        lines.append(f"{pid},{name},{rng.choice(CATEGORIES)}\n")
    path.write_text("".join(lines), encoding="utf-8")


def write_customers(path: Path, seed: int) -> None:
    rng = _sub_rng(seed, "customers")
    codes = [c for c, _ in COUNTRIES]
    weights = [w for _, w in COUNTRIES]
    countries = rng.choices(codes, weights=weights, k=N_CUSTOMERS)
    firsts = rng.choices(FIRST_NAMES, k=N_CUSTOMERS)
    lasts = rng.choices(LAST_NAMES, k=N_CUSTOMERS)
    lines = [CUSTOMERS_HEADER]
    lines.extend(
        f"{cid},{first} {last},{country}\n"
        for cid, first, last, country in zip(
            range(1, N_CUSTOMERS + 1), firsts, lasts, countries
        )
    )
    path.write_text("".join(lines), encoding="utf-8")


def write_sales(path: Path, rows: int, seed: int, progress: bool, bad_every: int = 0) -> None:
    """Writes the sales file; with `bad_every` = k > 0, every row whose rowid is a
    multiple of k gets the quantity `x`, which is not an integer (a bad row)."""
    rng = _sub_rng(seed, "sales")

    # Precomputed string pieces; rows only ever concatenate these.
    start = dt.date(YEAR, 1, 1)
    n_days = (dt.date(YEAR + 1, 1, 1) - start).days  # 366: 2024 is a leap year
    day_prefix = [(start + dt.timedelta(days=d)).isoformat() + " " for d in range(n_days)]
    secs = range(86_400)
    hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in secs]
    customers = [str(i) for i in range(1, N_CUSTOMERS + 1)]
    products = [str(i) for i in range(1, N_PRODUCTS + 1)]
    quantities = [str(i) for i in range(1, 11)]
    prices = [f"{c // 100}.{c % 100:02d}" for c in range(50, 50_001)]

    choices = rng.choices
    t0 = time.perf_counter()
    next_report = 0.0
    with open(path, "w", encoding="ascii", newline="\n", buffering=WRITE_BUFFER) as f:
        f.write(SALES_HEADER)
        first = 1
        for d in range(n_days):
            # Rows of day d: an even split of 1..rows over the days of the year.
            end = (d + 1) * rows // n_days
            n = end - (first - 1)
            if n <= 0:
                continue
            prefix = day_prefix[d]
            ts = [prefix + hms[s] for s in sorted(choices(secs, k=n))]
            qty = choices(quantities, k=n)
            if bad_every > 0:
                for i in range((bad_every - first % bad_every) % bad_every, n, bad_every):
                    qty[i] = "x"
            block = "\n".join(
                map(
                    ",".join,
                    zip(
                        map(str, range(first, end + 1)),
                        ts,
                        choices(customers, k=n),
                        choices(products, k=n),
                        qty,
                        choices(prices, k=n),
                    ),
                )
            )
            f.write(block)
            f.write("\n")
            first = end + 1
            if progress:
                now = time.perf_counter() - t0
                if now >= next_report:
                    print(
                        f"  sales.csv: {end:,}/{rows:,} rows ({now:.1f}s)",
                        file=sys.stderr,
                        flush=True,
                    )
                    next_report = now + 10.0


def _manifest_matches(out: Path, rows: int, seed: int, bad_every: int = 0) -> bool:
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if (
        manifest.get("format_version") != FORMAT_VERSION
        or manifest.get("rows") != rows
        or manifest.get("seed") != seed
        or manifest.get("bad_every", 0) != bad_every
    ):
        return False
    files = manifest.get("files", {})
    for name in ("sales.csv", "products.csv", "customers.csv"):
        try:
            if (out / name).stat().st_size != files.get(name):
                return False
        except OSError:
            return False
    return True


def generate(out: Path, rows: int, seed: int = DEFAULT_SEED, force: bool = False,
             progress: bool = True, bad_every: int = 0) -> bool:
    """Generates the dataset into `out`. Returns False when it was already there."""
    if rows < 0:
        raise ValueError("--rows must be >= 0")
    out.mkdir(parents=True, exist_ok=True)
    if not force and _manifest_matches(out, rows, seed, bad_every):
        return False

    # Invalidate the old manifest first, so an interrupted run is never taken
    # for a complete one; each file is written under a temporary name and renamed.
    (out / "manifest.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    for name, writer in (
        ("products.csv", lambda p: write_products(p, seed)),
        ("customers.csv", lambda p: write_customers(p, seed)),
        ("sales.csv", lambda p: write_sales(p, rows, seed, progress, bad_every)),
    ):
        tmp = out / (name + ".tmp")
        writer(tmp)
        os.replace(tmp, out / name)
    elapsed = time.perf_counter() - t0

    manifest = {
        "format_version": FORMAT_VERSION,
        "rows": rows,
        "seed": seed,
        "bad_every": bad_every,
        "products": N_PRODUCTS,
        "customers": N_CUSTOMERS,
        "files": {
            name: (out / name).stat().st_size
            for name in ("sales.csv", "products.csv", "customers.csv")
        },
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generation_seconds": round(elapsed, 2),
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    return True


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                    help=f"number of sales rows (default {DEFAULT_ROWS:,})")
    ap.add_argument("--out", type=Path, default=here / "data",
                    help="output directory (default: bench/data)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help=f"random seed (default {DEFAULT_SEED})")
    ap.add_argument("--force", action="store_true",
                    help="regenerate even if the manifest says the data is current")
    ap.add_argument("--quiet", action="store_true", help="no progress output")
    ap.add_argument("--bad-rows", type=float, default=0.0, metavar="FRACTION",
                    help="make this fraction of the sales rows bad (quantity `x`), for the "
                         "bad-row benchmark, e.g. 0.001; write them to another --out")
    args = ap.parse_args(argv)
    if args.rows < 0:
        ap.error("--rows must be >= 0")

    t0 = time.perf_counter()
    if not 0.0 <= args.bad_rows < 1.0:
        ap.error("--bad-rows is a fraction between 0 and 1")
    bad_every = round(1 / args.bad_rows) if args.bad_rows > 0 else 0
    made = generate(args.out, args.rows, args.seed, args.force, progress=not args.quiet,
                    bad_every=bad_every)
    if made:
        print(f"generated {args.rows:,} sales rows in {args.out} "
              f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    else:
        print(f"{args.out}: {args.rows:,} sales rows (seed {args.seed}) already "
              f"present, skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
