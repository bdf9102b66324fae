#!/usr/bin/env python3
"""HTTP API benchmark: etl's `type: http` source against a `requests` + `pandas.json_normalize`
script (bench/http_pandas.py), both loading a paginated JSON API into Parquet.

A local server (a separate process, HTTP/1.1 keep-alive, bodies prepared before timing
starts) serves `--pages` pages of `--page-size` JSON records with a nested object each,
`/items?page=N&per_page=M`, then an empty page; the cases with latency delay every response by 50 ms.
Measured per run: wall time and peak RSS of the client process (ru_maxrss from wait4).

    python3 bench/http_bench.py                     # quick look, nothing written
    python3 bench/http_bench.py --record            # and update the HTTP section of bench/RESULTS.md

Uses target/release/etl (build it with `cargo build --release --bin etl`), and a Python with
requests, pandas and pyarrow (`--python`; by default bench/.venv, created and filled with pip).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BenchError, run_child  # noqa: E402  (bench/run.py)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BEGIN, END = "<!-- bench:begin http -->", "<!-- bench:end http -->"
# One client run may take this long (etl at concurrency 1 with 50 ms latency takes ~53 s);
# past it the run is killed and the benchmark fails, rather than hang.
RUN_TIMEOUT_S = 900.0


# ------------------------------------------------------------------------ the server


def page_body(page: int, size: int) -> bytes:
    first = (page - 1) * size
    records = [
        {
            "id": i,
            "name": f"item {i}",
            "price": round((i % 1000) * 0.37, 2),
            "created": f"2024-06-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "active": i % 3 != 0,
            "user": {"id": i % 5000, "country": ("DE", "FR", "ES", "IT")[i % 4]},
        }
        for i in range(first, first + size)
    ]
    return json.dumps({"data": records, "page": page}).encode()


def serve(port_out, pages: int, size: int, latency: float) -> None:
    bodies = [page_body(p, size) for p in range(1, pages + 1)]
    empty = json.dumps({"data": [], "page": pages + 1}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every response.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            q = parse_qs(urlparse(self.path).query)
            page = int(q.get("page", ["1"])[0])
            body = bodies[page - 1] if 1 <= page <= pages else empty
            if latency:
                time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client that fetched ahead past the last page hung up

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


class Server:
    def __init__(self, pages: int, size: int, latency_ms: float):
        q: multiprocessing.Queue = multiprocessing.Queue()
        self.proc = multiprocessing.Process(
            target=serve, args=(q, pages, size, latency_ms / 1000.0), daemon=True
        )
        self.proc.start()
        self.port = q.get(timeout=300)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/items"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join()


# ------------------------------------------------------------------------ measuring


@dataclass
class Run:
    wall_s: float
    peak_mib: float


def measure(cmd: list[str], cwd: Path, log: Path) -> Run:
    try:
        _, wall, usage = run_child(cmd, cwd, log, RUN_TIMEOUT_S)
    except BenchError as e:
        sys.exit(str(e))
    return Run(wall, usage.ru_maxrss / 1024.0)


PIPELINE = """
sources:
  items:
    type: http
    url: "{url}"
    paginate: {{ type: page, size_param: per_page, size: {size} }}
    records: data
    flatten: true
    concurrency: {concurrency}
{extra}
sinks:
  out: {{ from: items, type: parquet, path: out.parquet }}
"""


def etl_case(etl: Path, url: str, size: int, concurrency: int, rate: int | None,
             work: Path, name: str) -> list[str]:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    extra = f"    rate_limit: {{ requests: {rate}, per: second }}\n" if rate else ""
    (d / "p.yaml").write_text(PIPELINE.format(url=url, size=size, concurrency=concurrency,
                                              extra=extra))
    return [str(etl), "run", str(d / "p.yaml")]


def parquet_rows(python: str, path: Path) -> int:
    code = "import pyarrow.parquet as pq, sys; print(pq.read_table(sys.argv[1]).num_rows)"
    return int(subprocess.check_output([python, "-c", code, str(path)]).decode().strip())


def ensure_python(python: str | None) -> str:
    if python:
        return python
    venv = BENCH / ".venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    probe = subprocess.run([str(py), "-c", "import requests, pandas, pyarrow"],
                           capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "requests", "pandas",
                               "pyarrow"])
    return str(py)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.lower().startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {mem / 1024 / 1024:.1f} GiB RAM"


# ------------------------------------------------------------------------ the cases


@dataclass
class Case:
    label: str
    latency_ms: float
    pages: int
    client: str  # "etl" or "pandas"
    concurrency: int = 1
    rate: int | None = None
    runs: int = 3


def cases(a) -> list[Case]:
    p = a.pages
    return [
        Case("etl, concurrency 4", 0, p, "etl", 4, runs=a.runs),
        Case("etl, concurrency 1", 0, p, "etl", 1, runs=a.runs),
        Case(f"etl, concurrency 4, {p // 10} pages", 0, p // 10, "etl", 4, runs=a.runs),
        Case("requests + pandas", 0, p, "pandas", runs=a.pandas_runs),
        Case("etl, concurrency 1", 50, p, "etl", 1, runs=1),
        Case("etl, concurrency 4", 50, p, "etl", 4, runs=a.runs),
        Case("etl, concurrency 16", 50, p, "etl", 16, runs=a.runs),
        Case("etl, concurrency 16, rate_limit 100/s", 50, p, "etl", 16, rate=100, runs=1),
        Case("requests + pandas", 50, p, "pandas", runs=1),
    ]


def run_case(c: Case, a, python: str, work: Path) -> dict:
    server = Server(c.pages, a.page_size, c.latency_ms)
    try:
        name = re.sub(r"[^a-z0-9]+", "-", f"{c.label}-{c.latency_ms}-{c.pages}".lower())
        runs = []
        for k in range(c.runs):
            d = work / name
            out = d / "out.parquet"
            if c.client == "etl":
                cmd = etl_case(Path(a.etl), server.url(), a.page_size, c.concurrency, c.rate,
                               work, name)
            else:
                d.mkdir(parents=True, exist_ok=True)
                cmd = [python, str(BENCH / "http_pandas.py"), server.url(), str(out)]
            if out.exists() or (d / ".etl").exists():
                subprocess.run(["rm", "-rf", str(out), str(d / ".etl")], check=True)
            runs.append(measure(cmd, ROOT, work / "logs" / f"{name}-{k}.log"))
            rows = parquet_rows(python, out)
            expected = c.pages * a.page_size
            if rows != expected:
                sys.exit(f"{c.label}: {rows} rows written, {expected} expected")
    finally:
        server.stop()
    wall = statistics.median(r.wall_s for r in runs)
    rows = c.pages * a.page_size
    res = {"case": c.label, "latency_ms": c.latency_ms, "pages": c.pages, "rows": rows,
           "runs": c.runs, "median_s": round(wall, 2), "rows_per_s": round(rows / wall),
           "peak_mib": round(max(r.peak_mib for r in runs))}
    print(f"{c.label:45} latency {c.latency_ms:>3.0f} ms  {c.pages:>5} pages  "
          f"{wall:7.2f} s  {rows / wall:>10,.0f} rows/s  {res['peak_mib']:>5} MiB", flush=True)
    return res


def table(results: list[dict]) -> str:
    lines = ["| client | latency | pages | median s | rows/s | peak MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['case']} | {r['latency_ms']:.0f} ms | {r['pages']:,} | "
                     f"{r['median_s']:.2f} | {r['rows_per_s']:,} | {r['peak_mib']} |")
    return "\n".join(lines)


def record(results: list[dict], a, load: str) -> None:
    def rate(label: str, latency: float) -> float:
        return next(r["rows_per_s"] for r in results
                    if r["case"] == label and r["latency_ms"] == latency
                    and r["pages"] == a.pages)
    ratio0 = rate("etl, concurrency 4", 0) / rate("requests + pandas", 0)
    ratio50 = rate("etl, concurrency 16", 50) / rate("requests + pandas", 50)
    version = subprocess.run([a.etl, "--version"], capture_output=True, text=True).stdout.strip()
    section = "\n".join([
        BEGIN,
        f"## HTTP API source — {a.pages:,} pages of {a.page_size:,} JSON records",
        "",
        f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC",
        f"- machine: {machine()}",
        f"- load average when the benchmark started: {load}",
        f"- etl: `{version}` (release build); pandas script: bench/http_pandas.py",
        "- server: bench/http_bench.py's local server (Python, its own process, bodies prepared "
        "ahead), on the same machine: it shares the cores with the client",
        "",
        table(results),
        "",
        f"Throughput, etl against the script: {ratio0:.1f}× without latency (target ≥ 10×), "
        f"{ratio50:.1f}× with 50 ms per request.",
        END,
    ])
    path = BENCH / "RESULTS.md"
    text = path.read_text()
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text,
                      flags=re.S)
    else:
        marker = "## History"
        text = text.replace(marker, section + "\n\n" + marker, 1) if marker in text \
            else text + "\n" + section + "\n"
    path.write_text(text)
    print(f"recorded in {path.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3, help="runs of each etl case")
    ap.add_argument("--pandas-runs", type=int, default=1)
    ap.add_argument("--etl", default=str(ROOT / "target" / "release" / "etl"))
    ap.add_argument("--python", help="a Python with requests, pandas and pyarrow")
    ap.add_argument("--work", default=str(BENCH / "out" / "http"))
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--only-latency", type=float, help="only the cases with this latency")
    a = ap.parse_args()
    if not Path(a.etl).exists():
        sys.exit(f"{a.etl} is missing: cargo build --release --bin etl")
    python = ensure_python(a.python)
    load = os.getloadavg()
    load_text = f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)"
    print(f"{machine()}; {load_text}")
    work = Path(a.work)
    results = [run_case(c, a, python, work) for c in cases(a)
               if a.only_latency is None or c.latency_ms == a.only_latency]
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if a.record:
        record(results, a, load_text)


if __name__ == "__main__":
    main()
