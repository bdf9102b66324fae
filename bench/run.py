#!/usr/bin/env python3
"""Benchmark harness: etl against DuckDB on the same workloads and data.

    python3 bench/run.py --rows 1000000 --runs 3
    python3 bench/run.py --record                # 10M rows, 5 runs, update bench/RESULTS.md

Steps: make bench/.venv with DuckDB (once), generate the data (once per row count),
find or build the etl binary, then for each workload run etl and DuckDB --runs times
each, one fresh process per run, alternating which engine goes first. Every run's
wall time (time.perf_counter around the child) and peak RSS (ru_maxrss of the child
from os.wait4) is kept; the report gives the median wall time and the highest peak
RSS per engine and workload. The outputs of both engines are read back with DuckDB
and must agree (row count and checksums), or the harness exits non-zero.

Standard library only; DuckDB lives in the virtualenv and runs in its own processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VENV_PY = VENV / "bin" / "python"
PIPELINES = BENCH / "pipelines"
DUCKDB_SCRIPT = BENCH / "duckdb_workloads.py"
RESULTS_MD = BENCH / "RESULTS.md"

WORKLOADS = ("csv_to_parquet", "rollup")
OUTPUT_FILE = {"csv_to_parquet": "sales.parquet", "rollup": "rollup.parquet"}
ENGINES = ("etl", "duckdb")

TIME_RATIO_TARGET = 1.5  # etl median wall time / DuckDB median wall time
MEM_RATIO_TARGET = 2.0   # etl peak RSS / DuckDB peak RSS

# Relative tolerance for floating-point checksums (sums of decimals read as DOUBLE).
FLOAT_RTOL = 1e-9


class BenchError(Exception):
    """A failure that stops the benchmark with a message and exit code 1."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- setup


def ensure_venv(duckdb_version: str | None) -> None:
    """Creates bench/.venv and installs duckdb into it, if not already there."""
    if not VENV_PY.exists():
        log(f"creating virtualenv {rel(VENV)}")
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
        if made.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            raise BenchError(f"could not create {rel(VENV)} with {sys.executable} -m venv "
                             "(on Debian/Ubuntu: apt-get install python3-venv)")
    probe = subprocess.run(
        [str(VENV_PY), "-c", "import duckdb; print(duckdb.__version__)"],
        capture_output=True, text=True,
    )
    have = probe.stdout.strip() if probe.returncode == 0 else None
    if have is not None and (duckdb_version is None or have == duckdb_version):
        return
    spec = f"duckdb=={duckdb_version}" if duckdb_version else "duckdb"
    log(f"installing {spec} into {rel(VENV)}")
    subprocess.run(
        [str(VENV_PY), "-m", "pip", "install", "--disable-pip-version-check",
         "--quiet", spec],
        check=True,
    )


def generate_data(rows: int, data_dir: Path) -> None:
    subprocess.run(
        [sys.executable, str(BENCH / "generate.py"), "--rows", str(rows),
         "--out", str(data_dir)],
        check=True,
    )


def find_etl(explicit: str | None, build: bool) -> Path:
    """--etl PATH, else target/release/etl, built with cargo when missing (or --build)."""
    if explicit:
        etl = Path(explicit).expanduser()
        if not etl.is_absolute():
            etl = (Path.cwd() / etl).resolve()
        if not etl.exists():
            raise BenchError(f"--etl {explicit}: no such file")
        return etl
    etl = REPO / "target" / "release" / "etl"
    if build or not etl.exists():
        why = "--build" if build else f"{rel(etl)} is missing"
        log(f"{why}: running `cargo build --release --bin etl` in {REPO}")
        subprocess.run(["cargo", "build", "--release", "--bin", "etl"], cwd=REPO, check=True)
        if not etl.exists():
            raise BenchError(f"cargo build succeeded but {rel(etl)} is still missing")
    return etl


def warm_page_cache(data_dir: Path) -> None:
    """Reads the inputs once so that every measured run starts with them cached;
    otherwise the first run of whichever engine goes first pays for the disk."""
    for name in ("sales.csv", "products.csv", "customers.csv"):
        with open(data_dir / name, "rb", buffering=0) as f:
            while f.read(16 << 20):
                pass


# ----------------------------------------------------------------- measuring runs


@dataclass
class Run:
    wall_s: float
    peak_rss_kib: int


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def peak_mib(self) -> float:
        return max(r.peak_rss_kib for r in self.runs) / 1024.0


def run_child(cmd: list[str], cwd: Path, log_path: Path, timeout: float,
              env: dict[str, str] | None = None) -> tuple[float, float, os.struct_rusage]:
    """Runs `cmd` as a child process; returns its start (epoch seconds), wall time and
    rusage, or raises BenchError when it fails or outlives `timeout` (it is killed then).

    ru_maxrss from wait4() is the child's own high-water mark (KiB on Linux), so
    the harness's memory never counts. Output goes to `log_path`, not a pipe, so
    the child can never block on a full pipe while we sit in wait4()."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        epoch0 = time.time()
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT,
                                env=None if env is None else {**os.environ, **env})
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    # We reaped the child ourselves; tell Popen so it does not try again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}\n"
                         f"log: {rel(log_path)}")
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BenchError(
            f"exit code {proc.returncode}: {' '.join(cmd)}\n"
            f"last lines of {rel(log_path)}:\n  " + "\n  ".join(tail)
        )
    return epoch0, wall, usage


def measure(cmd: list[str], cwd: Path, log_path: Path, timeout: float) -> Run:
    """Runs `cmd` as a child process and returns its wall time and peak RSS."""
    _, wall, usage = run_child(cmd, cwd, log_path, timeout)
    return Run(wall_s=wall, peak_rss_kib=usage.ru_maxrss)


def engine_command(engine: str, workload: str, etl: Path | None, data_dir: Path,
                   out_dir: Path) -> list[str]:
    if engine == "etl":
        assert etl is not None
        return [str(etl), "run", f"bench/pipelines/{workload}.yaml",
                "--var", f"data_dir={data_dir}", "--var", f"out_dir={out_dir}"]
    return [str(VENV_PY), str(DUCKDB_SCRIPT), workload,
            "--data-dir", str(data_dir), "--out-dir", str(out_dir)]


def clear_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


# ------------------------------------------------------------------- verification


def inspect_output(workload: str, path: Path) -> dict:
    proc = subprocess.run(
        [str(VENV_PY), str(DUCKDB_SCRIPT), "inspect", workload, str(path)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BenchError(f"could not read back {rel(path)}:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return abs(a - b) <= FLOAT_RTOL * max(abs(a), abs(b), 1.0)
    return a == b


def verify(workload: str, rows: int, checks: dict[str, dict]) -> list[str]:
    """Problems found in the engines' outputs (an empty list means all good)."""
    problems = []
    expected_total = {"csv_to_parquet": ("rows", rows), "rollup": ("sum_orders", rows)}
    key, want = expected_total[workload]
    for engine, c in checks.items():
        if c.get(key) != want:
            problems.append(f"{workload}: {engine} output has {key} = {c.get(key)}, "
                            f"expected {want} (one per sales row)")
    if "etl" in checks and "duckdb" in checks:
        e, d = checks["etl"], checks["duckdb"]
        if e.get("rows") != d.get("rows"):
            problems.append(f"{workload}: row counts differ: etl {e.get('rows')}, "
                            f"duckdb {d.get('rows')}")
        for k in d:
            if k != "rows" and not same(e.get(k), d.get(k)):
                problems.append(f"{workload}: {k} differs: etl {e.get(k)!r}, "
                                f"duckdb {d.get(k)!r}")
    return problems


# ------------------------------------------------------------------------ reporting


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / (1024 * 1024)
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu": cpu, "cores": usable, "ram_gib": ram_gib}


def machine_str(m: dict) -> str:
    ram = f"{m['ram_gib']:.1f} GiB RAM" if m["ram_gib"] else "RAM unknown"
    return f"{m['cpu']}, {m['cores']} cores, {ram}"


def etl_version(etl: Path) -> str:
    try:
        p = subprocess.run([str(etl), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    if p.returncode != 0:
        return f"unknown (`etl --version` exited with {p.returncode})"
    return p.stdout.strip() or p.stderr.strip() or "unknown (`etl --version` printed nothing)"


def duckdb_info() -> dict:
    p = subprocess.run([str(VENV_PY), str(DUCKDB_SCRIPT), "version"],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def verdict(r: float | None, target: float) -> str:
    if r is None:
        return "—"
    return f"met ({r:.2f} ≤ {target})" if r <= target else f"**not met** ({r:.2f} > {target})"


def summarize(results: dict[str, dict[str, Series]]) -> dict[str, dict]:
    rows = {}
    for workload, by_engine in results.items():
        e, d = by_engine.get("etl"), by_engine.get("duckdb")
        r = {
            "etl_median_s": e.median_s if e else None,
            "duckdb_median_s": d.median_s if d else None,
            "etl_peak_mib": e.peak_mib if e else None,
            "duckdb_peak_mib": d.peak_mib if d else None,
        }
        r["time_ratio"] = ratio(r["etl_median_s"], r["duckdb_median_s"])
        r["mem_ratio"] = ratio(r["etl_peak_mib"], r["duckdb_peak_mib"])
        r["time_met"] = None if r["time_ratio"] is None else r["time_ratio"] <= TIME_RATIO_TARGET
        r["mem_met"] = None if r["mem_ratio"] is None else r["mem_ratio"] <= MEM_RATIO_TARGET
        rows[workload] = r
    return rows


def markdown_table(summary: dict[str, dict]) -> str:
    lines = [
        "| workload | etl median s | duckdb median s | time ratio etl/duckdb "
        "| etl peak MiB | duckdb peak MiB | memory ratio etl/duckdb |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w, r in summary.items():
        lines.append(
            f"| {w} | {fmt(r['etl_median_s'])} | {fmt(r['duckdb_median_s'])} "
            f"| {fmt(r['time_ratio'])} | {fmt(r['etl_peak_mib'], 0)} "
            f"| {fmt(r['duckdb_peak_mib'], 0)} | {fmt(r['mem_ratio'])} |"
        )
    return "\n".join(lines)


def targets_table(summary: dict[str, dict]) -> str:
    lines = [
        f"| workload | time ratio ≤ {TIME_RATIO_TARGET} | memory ratio ≤ {MEM_RATIO_TARGET} |",
        "|---|---|---|",
    ]
    for w, r in summary.items():
        lines.append(f"| {w} | {verdict(r['time_ratio'], TIME_RATIO_TARGET)} "
                     f"| {verdict(r['mem_ratio'], MEM_RATIO_TARGET)} |")
    return "\n".join(lines)


RESULTS_HEADER = """# Benchmark results

`etl` against DuckDB on the workloads in `bench/pipelines/`; see `bench/README.md` for
what is measured and how. Sections are written by `python3 bench/run.py --record`: one
per machine and row count, updated in place when recorded again (a run with `--only`
updates just that workload's row).

Targets: etl's median wall time at most {t}× DuckDB's, and etl's peak RSS at most
{m}× DuckDB's, on every workload.
""".format(t=TIME_RATIO_TARGET, m=MEM_RATIO_TARGET)

SECTION_RE = re.compile(
    r"<!-- bench:begin (?P<key>\S+) -->\n(?P<body>.*?)<!-- bench:end (?P=key) -->\n?",
    re.S,
)
DATA_RE = re.compile(r"<!-- bench:data (?P<json>\{.*?\}) -->", re.S)


def section_key(rows: int, m: dict) -> str:
    cpu = re.sub(r"[^a-z0-9]+", "-", m["cpu"].lower()).strip("-") or "cpu"
    return f"rows{rows}-{cpu}-{m['cores']}c"


def render_section(key: str, data: dict) -> str:
    m = data["machine"]
    entries = data["workloads"]
    latest = max(entries.values(), key=lambda e: e["date"])
    summary = {w: entries[w]["summary"] for w in WORKLOADS if w in entries}
    out = [
        f"<!-- bench:begin {key} -->",
        f"## {data['rows']:,} rows — {m['cpu']}, {m['cores']} cores",
        "",
        f"- date (UTC): {latest['date']}",
        f"- machine: {machine_str(m)}",
        f"- rows: {data['rows']:,} sales rows (5,000 products, 100,000 customers)",
        f"- runs: {latest['runs']} per engine and workload; median wall time, highest peak RSS",
        f"- etl: `{latest['etl_version']}`",
        f"- duckdb: {latest['duckdb_version']} (threads = {latest['duckdb_threads']})",
        "",
        markdown_table(summary),
        "",
        targets_table(summary),
    ]
    older = [
        f"- {w}: recorded {e['date']} with `{e['etl_version']}`, duckdb {e['duckdb_version']}, "
        f"{e['runs']} runs"
        for w, e in entries.items()
        if (e["date"], e["runs"], e["etl_version"], e["duckdb_version"])
        != (latest["date"], latest["runs"], latest["etl_version"], latest["duckdb_version"])
    ]
    if older:
        out += ["", "Rows not from the latest recording:", *older]
    out += [
        "",
        f"<!-- bench:data {json.dumps(data, sort_keys=True)} -->",
        f"<!-- bench:end {key} -->",
        "",
    ]
    return "\n".join(out)


def record(summary: dict[str, dict], rows: int, runs: int, m: dict, etl_ver: str,
           duck: dict) -> None:
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else RESULTS_HEADER
    key = section_key(rows, m)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    data = {"rows": rows, "machine": m, "workloads": {}}
    match = next((mt for mt in SECTION_RE.finditer(text) if mt.group("key") == key), None)
    if match:
        old = DATA_RE.search(match.group("body"))
        if old:
            try:
                data["workloads"] = json.loads(old.group("json"))["workloads"]
            except (ValueError, KeyError):
                pass
    for w, s in summary.items():
        data["workloads"][w] = {
            "date": now, "runs": runs, "etl_version": etl_ver,
            "duckdb_version": duck["version"], "duckdb_threads": duck["threads"],
            "summary": {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()},
        }
    section = render_section(key, data)
    if match:
        text = text[: match.start()] + section + text[match.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text, encoding="utf-8")
    log(f"recorded in {rel(RESULTS_MD)} (section {key})")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark etl against DuckDB (see bench/README.md).")
    ap.add_argument("--rows", type=int, default=10_000_000,
                    help="sales rows to generate (default 10_000_000)")
    ap.add_argument("--runs", type=int, default=5,
                    help="measured runs per engine and workload (default 5)")
    ap.add_argument("--etl", metavar="PATH",
                    help="etl binary (default: target/release/etl, built if missing)")
    ap.add_argument("--build", action="store_true",
                    help="run `cargo build --release` first even if the binary exists")
    ap.add_argument("--only", choices=WORKLOADS, action="append",
                    help="run only this workload (repeatable)")
    ap.add_argument("--record", action="store_true",
                    help="add or update this machine's section in bench/RESULTS.md")
    ap.add_argument("--skip-etl", action="store_true",
                    help="run only the DuckDB side (to test the harness without an etl build)")
    ap.add_argument("--data-dir", type=Path, default=BENCH / "data",
                    help="where the generated CSV files live (default bench/data)")
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out",
                    help="outputs, logs and results.json (default bench/out)")
    ap.add_argument("--duckdb-version", metavar="X.Y.Z",
                    help="pin the DuckDB version installed in the venv (default: latest)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds before a single run is killed and the benchmark fails")
    ap.add_argument("--enforce-targets", action="store_true",
                    help="exit with code 3 when a time or memory target is not met")
    args = ap.parse_args(argv)
    if args.rows < 1:
        ap.error("--rows must be >= 1")
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.record and args.skip_etl:
        ap.error("--record needs both engines; drop --skip-etl")
    args.data_dir = args.data_dir.resolve()
    args.out_dir = args.out_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in WORKLOADS if not args.only or w in args.only]
    engines = ["duckdb"] if args.skip_etl else list(ENGINES)

    ensure_venv(args.duckdb_version)
    generate_data(args.rows, args.data_dir)
    etl = None if args.skip_etl else find_etl(args.etl, args.build)

    m = machine_info()
    duck = duckdb_info()
    etl_ver = etl_version(etl) if etl else "—"
    log(f"machine: {machine_str(m)}")
    log(f"etl: {etl_ver}{f' ({etl})' if etl else ' (skipped)'}")
    log(f"duckdb: {duck['version']} (threads = {duck['threads']})")
    log(f"rows: {args.rows:,}; runs: {args.runs}; workloads: {', '.join(workloads)}")

    warm_page_cache(args.data_dir)
    results: dict[str, dict[str, Series]] = {w: {e: Series() for e in engines} for w in workloads}
    problems: list[str] = []
    checks_all: dict[str, dict[str, dict]] = {}
    for workload in workloads:
        for i in range(args.runs):
            # Alternate which engine goes first, so neither always runs on a
            # machine that the other has just warmed up (or heated up).
            order = engines if i % 2 == 0 else engines[::-1]
            for engine in order:
                out = args.out_dir / engine / workload
                clear_dir(out)
                cmd = engine_command(engine, workload, etl, args.data_dir, out)
                run = measure(cmd, REPO, args.out_dir / "logs" / f"{engine}-{workload}-{i + 1}.log",
                              args.timeout)
                results[workload][engine].runs.append(run)
                log(f"  {workload:<15} {engine:<6} run {i + 1}/{args.runs}: "
                    f"{run.wall_s:7.2f} s  {run.peak_rss_kib / 1024:8.0f} MiB")
        # The last run's outputs are still in place: check that they agree.
        checks = {e: inspect_output(workload, args.out_dir / e / workload / OUTPUT_FILE[workload])
                  for e in engines}
        checks_all[workload] = checks
        found = verify(workload, args.rows, checks)
        problems += found
        log(f"  {workload}: {checks[engines[0]]['rows']:,} output rows"
            + ("" if found else (", etl and duckdb agree" if len(engines) == 2 else "")))

    summary = summarize(results)
    raw = {
        "rows": args.rows, "runs": args.runs, "machine": m, "etl_version": etl_ver,
        "duckdb": duck, "summary": summary, "checks": checks_all,
        "runs_detail": {w: {e: [vars(r) for r in s.runs] for e, s in by.items()}
                        for w, by in results.items()},
    }
    (args.out_dir / "results.json").write_text(json.dumps(raw, indent=2) + "\n")

    print()
    print(f"{args.rows:,} rows, {args.runs} runs; {machine_str(m)}; etl: {etl_ver}; "
          f"duckdb {duck['version']}")
    print()
    print(markdown_table(summary))
    if not args.skip_etl:
        print()
        print(targets_table(summary))
    print()

    if problems:
        log("VERIFICATION FAILED: the engines' outputs do not agree")
        for p in problems:
            log(f"  - {p}")
        log(f"details: {rel(args.out_dir / 'results.json')}")
        return 1

    if args.record:
        record(summary, args.rows, args.runs, m, etl_ver, duck)

    if args.enforce_targets and any(
        r["time_met"] is False or r["mem_met"] is False for r in summary.values()
    ):
        log("targets not met")
        return 3
    return 0


def cli(main) -> None:
    """Runs a benchmark's `main` as a command: its return code, or 1 with the reason when a
    step failed, or 130 on Ctrl-C."""
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"benchmark failed: {e}")
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        log(f"benchmark failed: command exited with {e.returncode}: {' '.join(map(str, e.cmd))}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    cli(main)
