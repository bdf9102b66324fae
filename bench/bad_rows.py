#!/usr/bin/env python3
"""What tolerating bad rows costs the CSV -> Parquet workload.

Runs `bench/pipelines/csv_to_parquet.yaml` with a release build of etl in three ways:

  fail        on_bad_row: fail (the default: DataFusion's parallel CSV reader)
  quarantine  on_bad_row: quarantine, no bad rows
  quarantine  on_bad_row: quarantine, 0.1% bad rows (quantity `x` in every 1000th row)

and prints the median wall time and the highest peak RSS of each (5 runs by default).
`--record` writes them into bench/RESULTS.md between `bench:bad-rows` markers. The clean
data is bench/data (as for run.py), the dirty data bench/data-bad; both are generated when
missing. Uses run.py's helpers (measure, find_etl, warm_page_cache).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py)

BENCH = run.BENCH
MARK_BEGIN = "<!-- bench:bad-rows:begin -->"
MARK_END = "<!-- bench:bad-rows:end -->"


def generate(rows: int, out: Path, bad: float) -> None:
    cmd = [sys.executable, str(BENCH / "generate.py"), "--rows", str(rows), "--out", str(out)]
    if bad:
        cmd += ["--bad-rows", str(bad)]
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bad", type=float, default=0.001, help="fraction of bad rows (0.001)")
    ap.add_argument("--etl", metavar="PATH", help="etl binary (default target/release/etl)")
    ap.add_argument("--record", action="store_true", help="write the table into RESULTS.md")
    ap.add_argument("--keep-data", action="store_true", help="keep bench/data-bad afterwards")
    args = ap.parse_args(argv)
    clean, dirty = BENCH / "data", BENCH / "data-bad"
    generate(args.rows, clean, 0.0)
    generate(args.rows, dirty, args.bad)
    etl = run.find_etl(args.etl, False)
    out_root = BENCH / "out" / "bad-rows"
    variants = [
        ("fail, no bad rows", clean, "fail"),
        ("quarantine, no bad rows", clean, "quarantine"),
        (f"quarantine, {args.bad:.1%} bad rows", dirty, "quarantine"),
    ]
    results = []
    for label, data, mode in variants:
        run.warm_page_cache(data)
        walls, rss = [], []
        for i in range(args.runs):
            out = out_root / mode / data.name
            run.clear_dir(out)
            cmd = [str(etl), "run", "bench/pipelines/csv_to_parquet.yaml",
                   "--var", f"data_dir={data}", "--var", f"out_dir={out}",
                   "--var", f"on_bad_row={mode}"]
            r = run.measure(cmd, run.REPO, out_root / "logs" / f"{mode}-{data.name}-{i}.log",
                            3600.0)
            walls.append(r.wall_s)
            rss.append(r.peak_rss_kib / 1024)
            run.log(f"  {label}: run {i + 1}/{args.runs}: {r.wall_s:.2f}s, "
                    f"{r.peak_rss_kib / 1024:.0f} MiB")
        results.append((label, statistics.median(walls), max(rss)))
    shutil.rmtree(out_root, ignore_errors=True)
    # The pipeline's state dir (quarantine files of the dirty runs) sits beside it.
    shutil.rmtree(BENCH / "pipelines" / ".etl" / "quarantine", ignore_errors=True)
    if not args.keep_data:
        shutil.rmtree(dirty, ignore_errors=True)
    base = results[0][1]
    lines = ["| variant | etl median s | vs fail | etl peak MiB |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {wall:.2f} | {wall / base:.2f}x | {mib:.0f} |"
              for label, wall, mib in results]
    table = "\n".join(lines)
    print(table)
    if args.record:
        m = run.machine_info()
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        section = "\n".join([
            MARK_BEGIN,
            "## Bad rows: what `on_bad_row: quarantine` costs csv_to_parquet",
            "",
            f"- date (UTC): {now}; machine: {run.machine_str(m)}; {args.rows:,} rows; "
            f"{args.runs} runs each (median wall time, highest peak RSS)",
            "- measured with `python3 bench/bad_rows.py --record` (etl only; DuckDB has no "
            "equivalent mode)",
            "",
            table,
            MARK_END,
        ])
        text = run.RESULTS_MD.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text)
        else:
            text = text.replace("## History", section + "\n\n## History", 1)
        run.RESULTS_MD.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
