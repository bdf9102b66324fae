#!/usr/bin/env python3
"""PostgreSQL load benchmark: etl's postgres sink against psql, DuckDB and pandas.

    python3 bench/pg_load.py --rows 1000000 --runs 1 --inc-runs 1 --etl target/release/etl
    python3 bench/pg_load.py --record            # 10M rows, 3 runs (5 for the rerun)

Steps: make bench/.venv-pg (once), generate the sales CSV (bench/generate.py) and the
Parquet files made from it (bench/pg_workloads.py prepare; once per row count), start a
throwaway PostgreSQL server with default durability on a free loopback port, then:

1. full load: --rows rows from one Parquet file into a new table, by etl
   (bench/pipelines/pg_load.yaml), by DuckDB's postgres extension (CREATE TABLE AS SELECT
   * FROM read_parquet), and by `psql -c "\\copy ... FROM sales.csv CSV"` of the same rows;
2. small load: pandas `to_sql(method="multi")` of the first --pandas-rows rows, and etl on
   the same file;
3. incremental: etl (bench/pipelines/pg_incremental.yaml) loads the --rows file, then reruns
   on the grown file (1% new rows) and reads only those; against psql's \\copy of just the
   new rows' CSV into the same table.

One process per run; wall time from spawn to os.wait4, peak RSS and CPU time of the loading
client from its rusage; the server's CPU per process (sampled from /proc), WAL and
checkpoint counters (pg_stat_wal, pg_stat_bgwriter) around every run. Every loaded table is
checked (row count, sum(rowid), sum(price*quantity) and more) against the checksums of the
source rows before anything is recorded. The server is stopped (by its pid) at the end.

Standard library only; the Python engines live in bench/.venv-pg, in their own processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from run import (BENCH, REPO, RESULTS_MD, SECTION_RE, BenchError, cli, etl_version, find_etl,
                 generate_data, log, machine_info, machine_str, rel, run_child)

VENV = BENCH / ".venv-pg"
VENV_PY = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements-pg.txt"
WORKLOADS = BENCH / "pg_workloads.py"
PIPELINE_FULL = "bench/pipelines/pg_load.yaml"
PIPELINE_INC = "bench/pipelines/pg_incremental.yaml"

FULL_ENGINES = ("etl", "duckdb", "psql", "psql_bin")
SCHEMA = "bench"
PREP_VERSION = 1

# Targets (the words): full load no slower than DuckDB's postgres extension; the
# incremental rerun under 5% of the full load's time and within 1.2x of psql's \copy of the
# new rows alone; etl's peak memory under 256 MiB.
FULL_RATIO_TARGET = 1.0
RERUN_SHARE_TARGET = 0.05
RERUN_RATIO_TARGET = 1.2
RSS_TARGET_MIB = 256

TABLE_DDL = ("(rowid bigint, ts timestamp, customer_id integer, product_id integer, "
             "quantity integer, price numeric(10,2))")

CHECK_SQL = """
SELECT json_build_object(
  'rows', count(*),
  'sum_rowid', sum(rowid)::text,
  'sum_revenue', sum(price * quantity)::text,
  'sum_price', sum(price)::text,
  'sum_customer_id', sum(customer_id)::text,
  'sum_product_id', sum(product_id)::text,
  'sum_quantity', sum(quantity)::text,
  'min_ts', to_char(min(ts), 'YYYY-MM-DD HH24:MI:SS'),
  'max_ts', to_char(max(ts), 'YYYY-MM-DD HH24:MI:SS'))
FROM {table}
"""

STATS_SQL = """
SELECT json_build_object(
  'wal', (SELECT row_to_json(w) FROM pg_stat_wal w),
  'bgwriter', (SELECT row_to_json(b) FROM pg_stat_bgwriter b))
"""

# Counters whose difference across a run is reported.
WAL_KEYS = ("wal_records", "wal_fpi", "wal_bytes", "wal_buffers_full", "wal_write", "wal_sync")
BG_KEYS = ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint", "buffers_clean",
           "buffers_backend", "buffers_backend_fsync")

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- setup


def ensure_venv() -> None:
    """Creates bench/.venv-pg with the pinned requirements, if not already there."""
    if not VENV_PY.exists():
        log(f"creating virtualenv {rel(VENV)}")
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
        if made.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            raise BenchError(f"could not create {rel(VENV)} with {sys.executable} -m venv "
                             "(on Debian/Ubuntu: apt-get install python3-venv)")
    stamp = VENV / ".requirements"
    want = REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == want:
        return
    log(f"installing {rel(REQUIREMENTS)} into {rel(VENV)}")
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "--disable-pip-version-check",
                    "--quiet", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(want)


def prepare_data(args: argparse.Namespace) -> dict:
    """The Parquet files and checksums (bench/pg_workloads.py prepare), unless present."""
    generate_data(args.rows, args.data_dir)
    manifest = args.data_dir / "pg_manifest.json"
    csv = args.data_dir / "sales.csv"
    key = {"version": PREP_VERSION, "rows": args.rows, "delta": args.delta,
           "small": args.small, "row_group": args.row_group,
           "csv_size": csv.stat().st_size, "csv_mtime_ns": csv.stat().st_mtime_ns}
    files = ("sales.parquet", "sales_grown.parquet", "sales_small.parquet", "delta.csv")
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
            if old.get("key") == key and all((args.data_dir / f).exists() for f in files):
                log(f"pg data: {rel(args.data_dir)} is up to date")
                return old
        except ValueError:
            pass
    log(f"pg data: writing Parquet files into {rel(args.data_dir)}")
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(VENV_PY), str(WORKLOADS), "prepare", "--data-dir", str(args.data_dir),
         "--rows", str(args.rows), "--delta", str(args.delta), "--small", str(args.small),
         "--row-group", str(args.row_group)],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"preparing the Parquet files failed:\n{out.stderr.strip()}")
    data = json.loads(out.stdout)
    data["key"] = key
    data["sizes"] = {f: (args.data_dir / f).stat().st_size for f in files + ("sales.csv",)}
    manifest.write_text(json.dumps(data, indent=2) + "\n")
    log(f"pg data: done in {time.perf_counter() - t0:.1f}s")
    return data


def warm_page_cache(data_dir: Path) -> None:
    for name in ("sales.csv", "sales.parquet", "sales_grown.parquet", "sales_small.parquet",
                 "delta.csv"):
        with open(data_dir / name, "rb", buffering=0) as f:
            while f.read(16 << 20):
                pass


# -------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A throwaway PostgreSQL cluster in a temporary folder, with default settings apart
    from where it listens. Run as the `postgres` user when we are root."""

    def __init__(self, out_dir: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="etl-bench-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.keep_log = out_dir / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)
        self.port = 0
        self.pid = 0

    def start(self) -> None:
        init = subprocess.run(
            self.as_user + ["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"],
            capture_output=True, text=True)
        if init.returncode != 0:
            raise BenchError(f"initdb failed:\n{init.stderr.strip()}")
        for _ in range(5):  # the free-port probe can race with another process
            self.port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                    f"-c unix_socket_directories={self.dir}")
            up = subprocess.run(
                self.as_user + ["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                                "-t", "60", "-o", opts, "start"],
                capture_output=True, text=True)
            if up.returncode == 0:
                self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
                return
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise BenchError(f"the PostgreSQL server did not start:\n{tail}")

    def stop(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)  # fast shutdown
                for _ in range(600):
                    os.kill(self.pid, 0)
                    time.sleep(0.1)
            except ProcessLookupError:
                pass
            self.pid = 0
        if self.log.exists():
            shutil.copyfile(self.log, self.keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)

    # connection strings for the clients, all over loopback TCP
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/bench?sslmode=disable"

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=bench"

    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/bench"

    def psql_args(self, db: str = "bench") -> list[str]:
        return ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", db, "-v", "ON_ERROR_STOP=1"]

    def sql(self, query: str, db: str = "bench") -> str:
        p = subprocess.run(self.psql_args(db) + ["-A", "-t", "-c", query],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"psql failed: {query.strip()[:200]}\n{p.stderr.strip()}")
        return p.stdout.strip()

    def json(self, query: str) -> dict:
        return json.loads(self.sql(query))

    def settings(self) -> dict:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                 "wal_level", "shared_buffers", "max_wal_size", "checkpoint_timeout",
                 "wal_compression", "max_prepared_transactions")
        rows = self.sql("SELECT name || '=' || current_setting(name) FROM pg_settings "
                        f"WHERE name IN ({', '.join(repr(n) for n in names)}) ORDER BY name")
        out = dict(line.split("=", 1) for line in rows.splitlines())
        out["server_version"] = self.sql("SHOW server_version")
        return out

    def settle(self) -> None:
        """CHECKPOINT, and wait for autovacuum workers to finish, before a timed run."""
        for _ in range(600):
            if self.sql("SELECT count(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'autovacuum worker'") == "0":
                break
            time.sleep(0.1)
        self.sql("CHECKPOINT")


# ---------------------------------------------------------------- server sampling


def _proc_cpu_io(pid: int) -> tuple[float, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        rest = stat.rsplit(")", 1)[1].split()
        cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK
        wb = 0
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                wb = int(line.split()[1])
        return cpu, wb
    except (OSError, IndexError, ValueError):
        return None


def _children(ppid: int) -> dict[int, str]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            rest = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            if int(rest[1]) != ppid:
                continue
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        out[int(d)] = cmd
    return out


def _kind(cmd: str) -> str:
    if "127.0.0.1(" in cmd or "[local]" in cmd:
        return "backend"
    for k, name in (("walwriter", "walwriter"), ("checkpointer", "checkpointer"),
                    ("background writer", "bgwriter"), ("autovacuum", "autovacuum")):
        if k in cmd:
            return name
    return "other"


class ServerSampler(threading.Thread):
    """CPU seconds and disk writes of the server's processes while a run goes on, by kind
    (client backends, walwriter, checkpointer, ...), from /proc every 0.1 s. A backend that
    exits between two samples loses at most 0.1 s of its CPU time from the figure."""

    def __init__(self, postmaster: int):
        super().__init__(daemon=True)
        self.postmaster = postmaster
        self.first: dict[int, tuple[float, int]] = {}
        self.last: dict[int, tuple[float, int]] = {}
        self.kinds: dict[int, str] = {}
        self.stop_flag = threading.Event()
        self.sample(initial=True)

    def sample(self, initial: bool = False) -> None:
        for pid, cmd in _children(self.postmaster).items():
            v = _proc_cpu_io(pid)
            if v is None:
                continue
            # A backend just forked still shows the postmaster's command line: keep the
            # most specific kind seen.
            kind = _kind(cmd)
            if kind != "other" or pid not in self.kinds:
                self.kinds[pid] = kind
            if pid not in self.first:
                # Started during the run: it used nothing before.
                self.first[pid] = v if initial else (0.0, 0)
            self.last[pid] = v
        # The postmaster itself.
        v = _proc_cpu_io(self.postmaster)
        if v is not None:
            self.kinds[self.postmaster] = "postmaster"
            self.first.setdefault(self.postmaster, v)
            self.last[self.postmaster] = v

    def run(self) -> None:
        while not self.stop_flag.wait(0.1):
            self.sample()

    def finish(self) -> dict:
        self.stop_flag.set()
        self.join()
        self.sample()
        cpu: dict[str, float] = {}
        writes = 0
        for pid, (c1, w1) in self.last.items():
            c0, w0 = self.first.get(pid, (0.0, 0))
            k = self.kinds.get(pid, "other")
            cpu[k] = cpu.get(k, 0.0) + max(c1 - c0, 0.0)
            writes += max(w1 - w0, 0)
        return {"cpu_s": {k: round(v, 2) for k, v in sorted(cpu.items())},
                "disk_write_bytes": writes}


# ----------------------------------------------------------------- measuring runs


@dataclass
class Run:
    wall_s: float
    peak_rss_kib: int
    client_cpu_s: float
    server: dict = field(default_factory=dict)
    wal: dict = field(default_factory=dict)
    bgwriter: dict = field(default_factory=dict)
    copy: dict = field(default_factory=dict)


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)

    def median(self, get) -> float:
        return statistics.median(get(r) for r in self.runs)

    @property
    def median_s(self) -> float:
        return self.median(lambda r: r.wall_s)

    @property
    def peak_mib(self) -> float:
        return max(r.peak_rss_kib for r in self.runs) / 1024.0


def _diff(after: dict, before: dict, keys: tuple[str, ...]) -> dict:
    return {k: (after.get(k) or 0) - (before.get(k) or 0) for k in keys}


class Watcher:
    """`--watch`: a process (pg_workloads.py watch) polling pg_stat_progress_copy and the
    client backends' wait events every 20 ms while a run goes on. It costs the machine some
    CPU, so watched runs are for analysis, not for recording."""

    def __init__(self, server: Server, out: Path):
        self.out = out
        self.proc = subprocess.Popen(
            [str(VENV_PY), str(WORKLOADS), "watch", "--dsn", server.dsn(), "--out", str(out)],
            stdout=subprocess.PIPE, text=True)
        if self.proc.stdout is None or self.proc.stdout.readline().strip() != "ready":
            raise BenchError("the --watch poller did not start")

    def finish(self, t0: float, t_end: float) -> dict:
        """When COPY ran (seconds after the client started) and what the backend running it
        was doing meanwhile (share of samples per wait event; CPU = not waiting)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        samples = [json.loads(line) for line in self.out.read_text().splitlines() if line]
        copying = [s for s in samples if s["copy"]]
        if not copying:
            return {"copy_seen": False}
        waits: dict[str, int] = {}
        for s in copying:
            pids = {c[0] for c in s["copy"]}
            for pid, wait, _state, _query in s["backends"]:
                if pid in pids:
                    waits[wait] = waits.get(wait, 0) + 1
        n = sum(waits.values()) or 1
        return {"copy_seen": True,
                "copy_from_s": round(copying[0]["t"] - t0, 3),
                "copy_to_s": round(copying[-1]["t"] - t0, 3),
                "after_copy_s": round(t_end - copying[-1]["t"], 3),
                "copy_bytes": max(c[1] for s in copying for c in s["copy"]),
                "backend_waits": {k: round(v / n, 3) for k, v in
                                  sorted(waits.items(), key=lambda kv: -kv[1])},
                "samples": len(copying)}


def measure(cmd: list[str], log_path: Path, timeout: float, server: Server,
            env: dict[str, str] | None = None, watch: bool = False) -> Run:
    """Runs `cmd` as a child and returns its wall time, peak RSS and CPU time (rusage from
    wait4: the child's own, never the harness's), with the server's CPU per kind of process
    and its WAL/checkpoint counters across the run."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = server.json(STATS_SQL)
    watcher = Watcher(server, log_path.with_suffix(".watch.jsonl")) if watch else None
    sampler = ServerSampler(server.pid)
    sampler.start()
    try:
        epoch0, wall, usage = run_child(cmd, REPO, log_path, timeout, env)
    finally:
        srv = sampler.finish()
    copy = watcher.finish(epoch0, epoch0 + wall) if watcher else {}
    after = server.json(STATS_SQL)
    return Run(wall_s=wall, peak_rss_kib=usage.ru_maxrss,
               client_cpu_s=round(usage.ru_utime + usage.ru_stime, 2), server=srv,
               wal=_diff(after["wal"], before["wal"], WAL_KEYS),
               bgwriter=_diff(after["bgwriter"], before["bgwriter"], BG_KEYS), copy=copy)


# ------------------------------------------------------------------------ the runs


class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, etl: Path | None,
                 expected: dict):
        self.args = args
        self.server = server
        self.etl = etl
        self.expected = expected
        self.state_dir = args.out_dir / "state"
        self.logs = args.out_dir / "logs"
        self.results: dict[str, Series] = {}
        self.checks: dict[str, dict] = {}
        self.column_types: dict[str, str] = {}
        self.table_bytes: dict[str, int] = {}
        self.problems: list[str] = []
        self.binary_copy = args.out_dir / "sales.pgbin"
        self.copy_bytes: dict[str, int] = {}

    # helpers
    def series(self, name: str) -> Series:
        return self.results.setdefault(name, Series())

    def etl_env(self) -> dict[str, str]:
        return {"WH_URL": self.server.url(), "ETL_STATE_DIR": str(self.state_dir)}

    def reset_etl_state(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.server.sql("DROP SCHEMA IF EXISTS etl_state CASCADE")

    def drop(self, table: str) -> None:
        self.server.sql(f"DROP TABLE IF EXISTS {table}")

    def check(self, label: str, table: str, want: str) -> None:
        """The loaded table against the checksums of the source rows (`want`)."""
        got = self.server.json(CHECK_SQL.format(table=table))
        exp = self.expected[want]
        self.checks[label] = got
        for k, v in exp.items():
            g = got.get(k)
            ok = (Decimal(str(g)) == Decimal(str(v))) if k.startswith(("sum_", "rows")) \
                and g is not None else g == v
            if not ok:
                self.problems.append(f"{label}: {table} has {k} = {g!r}, expected {v!r}")
        if label not in self.column_types:
            self.column_types[label] = self.server.sql(
                "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
                f"ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{table}'::regclass "
                "AND attnum > 0 AND NOT attisdropped")
            self.table_bytes[label] = int(self.server.sql(
                f"SELECT pg_total_relation_size('{table}')"))

    def run(self, name: str, i: int, cmd: list[str], env: dict[str, str] | None = None) -> Run:
        r = measure(cmd, self.logs / f"{name}-{i + 1}.log", self.args.timeout, self.server,
                    env, watch=self.args.watch)
        self.series(name).runs.append(r)
        log(f"  {name:<22} run {i + 1}: {r.wall_s:7.2f} s  {r.peak_rss_kib / 1024:6.0f} MiB  "
            f"client cpu {r.client_cpu_s:6.2f} s  server {r.server['cpu_s']}  "
            f"wal {r.wal['wal_bytes'] / 2**20:7.0f} MiB")
        if r.copy.get("copy_seen"):
            c = r.copy
            top = list(c["backend_waits"].items())[:5]
            waits = ", ".join(f"{k} {v * 100:.0f}%" for k, v in top)
            log(f"  {'':<22}        COPY from {c['copy_from_s']:.2f} s to {c['copy_to_s']:.2f} s, "
                f"{c['after_copy_s']:.2f} s after; {c['copy_bytes']:,} bytes; backend: {waits}")
        return r

    # engines
    def etl_cmd(self, pipeline: str, file: str, table: str) -> list[str]:
        assert self.etl is not None
        return [str(self.etl), "run", pipeline, "--var", f"file={self.args.data_dir / file}",
                "--var", f"table={table}"]

    def load_full(self, engine: str, i: int, file: str, csv: str, table: str,
                  name: str) -> None:
        self.drop(table)
        if engine == "etl":
            self.reset_etl_state()
        self.server.settle()
        if engine == "etl":
            self.run(name, i, self.etl_cmd(PIPELINE_FULL, file, table), self.etl_env())
        elif engine == "duckdb":
            self.run(name, i, [str(VENV_PY), str(WORKLOADS), "duckdb", "--dsn",
                               self.server.dsn(), "--file", str(self.args.data_dir / file),
                               "--table", table])
        elif engine == "psql":
            copy = (f"\\copy {table} FROM '{self.args.data_dir / csv}' "
                    "WITH (FORMAT csv, HEADER true)")
            self.run(name, i, self.server.psql_args() + [
                "-c", f"CREATE TABLE {table} {TABLE_DDL}", "-c", copy])
        elif engine == "psql_bin":
            copy = (f"\\copy {table} FROM '{self.binary_copy}' WITH (FORMAT binary)")
            self.run(name, i, self.server.psql_args() + [
                "-c", f"CREATE TABLE {table} {TABLE_DDL}", "-c", copy])
        elif engine == "pandas":
            self.run(name, i, [str(VENV_PY), str(WORKLOADS), "pandas", "--url",
                               self.server.sqlalchemy_url(), "--file",
                               str(self.args.data_dir / file), "--table", table])
        self.check(name, table, "full" if file == "sales.parquet" else "small")
        self.drop(table)

    def make_binary_copy(self) -> None:
        """The rows in COPY's binary format (what etl sends), for psql_bin: loaded from the
        CSV and copied out again, untimed."""
        t = f"{SCHEMA}.sales_dump"
        self.drop(t)
        self.server.sql(f"CREATE TABLE {t} {TABLE_DDL}")
        subprocess.run(self.server.psql_args() + [
            "-c", f"\\copy {t} FROM '{self.args.data_dir / 'sales.csv'}' "
                  "WITH (FORMAT csv, HEADER true)",
            "-c", f"\\copy {t} TO '{self.binary_copy}' WITH (FORMAT binary)"],
            check=True, capture_output=True)
        self.drop(t)
        self.copy_bytes = {"binary": self.binary_copy.stat().st_size,
                           "csv": (self.args.data_dir / "sales.csv").stat().st_size}
        log(f"COPY data: binary {self.copy_bytes['binary']:,} bytes, "
            f"CSV {self.copy_bytes['csv']:,} bytes")

    def phase_full(self, engines: list[str]) -> None:
        if "psql_bin" in engines:
            self.make_binary_copy()
        log(f"full load: {self.args.rows:,} rows, {self.args.runs} runs per engine")
        for i in range(self.args.runs):
            # Rotate which engine goes first in each round.
            order = engines[i % len(engines):] + engines[:i % len(engines)]
            for e in order:
                self.load_full(e, i, "sales.parquet", "sales.csv", f"{SCHEMA}.sales_{e}",
                               f"full_{e}")

    def phase_small(self, with_etl: bool) -> None:
        log(f"small load: {self.args.small:,} rows; pandas 1 run"
            + (f", etl {self.args.runs} runs" if with_etl else ""))
        self.load_full("pandas", 0, "sales_small.parquet", "", f"{SCHEMA}.small_pandas",
                       "small_pandas")
        if with_etl:
            for i in range(self.args.runs):
                self.load_full("etl", i, "sales_small.parquet", "", f"{SCHEMA}.small_etl",
                               "small_etl")

    def phase_incremental(self) -> None:
        a = self.args
        t = f"{SCHEMA}.sales_inc"
        log(f"incremental: {a.inc_runs} rounds of a {a.rows:,}-row first load, then a rerun "
            f"on the grown file (+{a.delta:,} rows), against \\copy of those rows")
        copy = f"\\copy {t} FROM '{a.data_dir / 'delta.csv'}' WITH (FORMAT csv, HEADER true)"
        for i in range(a.inc_runs):
            self.drop(t)
            self.reset_etl_state()
            self.server.settle()
            self.run("inc_first_etl", i, self.etl_cmd(PIPELINE_INC, "sales.parquet", t),
                     self.etl_env())
            self.check("inc_first_etl", t, "full")
            # A rerun comes later: autovacuum has processed the new rows by then.
            self.server.sql(f"VACUUM (ANALYZE) {t}")
            steps = ["etl", "psql"] if i % 2 == 0 else ["psql", "etl"]
            for step in steps:
                self.server.settle()
                if step == "etl":
                    self.run("inc_rerun_etl", i,
                             self.etl_cmd(PIPELINE_INC, "sales_grown.parquet", t),
                             self.etl_env())
                    self.check("inc_rerun_etl", t, "grown")
                    if i == 0:
                        # Nothing new: the fixed cost of a rerun.
                        self.server.settle()
                        self.run("inc_noop_etl", i,
                                 self.etl_cmd(PIPELINE_INC, "sales_grown.parquet", t),
                                 self.etl_env())
                        self.check("inc_noop_etl", t, "grown")
                else:
                    self.run("inc_delta_psql", i, self.server.psql_args() + ["-c", copy])
                    self.check("inc_delta_psql", t, "grown")
                # Back to the first load's rows for the other step (VACUUM truncates the
                # emptied pages at the table's end). The watermark stays where it was.
                self.server.sql(f"DELETE FROM {t} WHERE rowid > {a.rows}")
                self.server.sql(f"VACUUM (ANALYZE) {t}")
        self.drop(t)
        self.reset_etl_state()


# ------------------------------------------------------------------------ reporting


ROW_LABELS = {
    "full_etl": ("etl", "Parquet → new table, binary COPY (`pg_load.yaml`)"),
    "full_duckdb": ("duckdb", "`CREATE TABLE pg.… AS SELECT * FROM read_parquet(…)`"),
    "full_psql": ("psql", "`\\copy … FROM sales.csv (FORMAT csv)` into a new table"),
    "full_psql_bin": ("psql", "`\\copy … FROM sales.pgbin (FORMAT binary)`: the same rows in "
                              "binary COPY format, as etl sends them (reference)"),
    "small_pandas": ("pandas", "`read_parquet` + `to_sql(method=\"multi\", chunksize=10000)`"),
    "small_etl": ("etl", "the same file, `pg_load.yaml`"),
    "inc_first_etl": ("etl", "first run of `pg_incremental.yaml` (every row)"),
    "inc_rerun_etl": ("etl", "rerun on the grown file: reads and loads only the new rows"),
    "inc_noop_etl": ("etl", "another rerun, nothing new (the fixed cost)"),
    "inc_delta_psql": ("psql", "`\\copy` of the new rows' CSV into the same table"),
}


def summarize(results: dict[str, Series], rows_of: dict[str, int]) -> dict[str, dict]:
    out = {}
    for name, s in results.items():
        med = lambda f: s.median(f)  # noqa: E731
        backend = med(lambda r: r.server["cpu_s"].get("backend", 0.0))
        server_all = med(lambda r: sum(r.server["cpu_s"].values()))
        out[name] = {
            "runs": len(s.runs),
            "rows": rows_of[name],
            "median_s": s.median_s,
            "rows_per_s": rows_of[name] / s.median_s if rows_of[name] else None,
            "peak_mib": s.peak_mib,
            "client_cpu_s": med(lambda r: r.client_cpu_s),
            "backend_cpu_s": backend,
            "server_cpu_s": server_all,
            "backend_busy": backend / s.median_s,
            "wal_mib": med(lambda r: r.wal["wal_bytes"]) / 2**20,
            "wal_fpi": med(lambda r: r.wal["wal_fpi"]),
            "wal_sync": med(lambda r: r.wal["wal_sync"]),
            "checkpoints_req": med(lambda r: r.bgwriter["checkpoints_req"]),
            "disk_write_mib": med(lambda r: r.server["disk_write_bytes"]) / 2**20,
            "walls": [round(r.wall_s, 3) for r in s.runs],
        }
    return out


def targets(summary: dict[str, dict], rows: int) -> list[dict]:
    """Each target: what, the measured figure, the limit, met or not (None: not measured)."""
    def get(name, k):
        return summary.get(name, {}).get(k)

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    full = get("full_etl", "median_s")
    out = [
        {"target": "full load no slower than DuckDB's postgres extension",
         "figure": "etl / duckdb median time",
         "value": ratio(full, get("full_duckdb", "median_s")), "limit": FULL_RATIO_TARGET},
        {"target": "incremental rerun under 5% of the full load's time",
         "figure": "rerun / etl full load median time",
         "value": ratio(get("inc_rerun_etl", "median_s"), full), "limit": RERUN_SHARE_TARGET},
        {"target": "incremental rerun within 1.2× of `\\copy` of the new rows alone",
         "figure": "rerun / `\\copy` of the new rows, median time",
         "value": ratio(get("inc_rerun_etl", "median_s"), get("inc_delta_psql", "median_s")),
         "limit": RERUN_RATIO_TARGET},
    ]
    etl_peaks = [v["peak_mib"] for k, v in summary.items() if k.endswith("_etl")]
    out.append({"target": f"etl peak memory under {RSS_TARGET_MIB} MiB",
                "figure": "highest etl peak RSS (MiB), every run",
                "value": max(etl_peaks) if etl_peaks else None, "limit": RSS_TARGET_MIB})
    for t in out:
        v = t["value"]
        t["met"] = None if v is None else v <= t["limit"]
    return out


def tables_md(summary: dict[str, dict]) -> str:
    head = ("| engine | what | rows | median s | rows/s | client peak MiB | client CPU s "
            "| server backend CPU s (busy) | all server CPU s | WAL MiB | runs (s) |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    parts = []
    for title, names in (("Full load", ("full_etl", "full_duckdb", "full_psql",
                                        "full_psql_bin")),
                         ("Small load (the pandas script)", ("small_pandas", "small_etl")),
                         ("Incremental", ("inc_first_etl", "inc_rerun_etl", "inc_noop_etl",
                                          "inc_delta_psql"))):
        rows = []
        for n in names:
            r = summary.get(n)
            if not r:
                continue
            eng, what = ROW_LABELS[n]
            rate = "—" if r["rows_per_s"] is None else f"{r['rows_per_s']:,.0f}"
            rows.append(
                f"| {eng} | {what} | {r['rows']:,} | {r['median_s']:.2f} "
                f"| {rate} | {r['peak_mib']:.0f} | {r['client_cpu_s']:.2f} "
                f"| {r['backend_cpu_s']:.2f} ({r['backend_busy'] * 100:.0f}%) "
                f"| {r['server_cpu_s']:.2f} | {r['wal_mib']:.0f} "
                f"| {', '.join(f'{w:.2f}' for w in r['walls'])} |")
        if rows:
            parts.append(f"**{title}**\n\n{head}\n" + "\n".join(rows))
    return "\n\n".join(parts)


def targets_md(ts: list[dict]) -> str:
    lines = ["| target | figure | measured | verdict |", "|---|---|---:|---|"]
    for t in ts:
        v = t["value"]
        if v is None:
            verdict, shown = "not measured", "—"
        else:
            shown = f"{v:.0f}" if t["limit"] > 10 else f"{v:.3f}"
            verdict = (f"met (≤ {t['limit']})" if t["met"]
                       else f"**missed** (> {t['limit']})")
        lines.append(f"| {t['target']} | {t['figure']} | {shown} | {verdict} |")
    return "\n".join(lines)


def section_key(rows: int, m: dict) -> str:
    import re
    cpu = re.sub(r"[^a-z0-9]+", "-", m["cpu"].lower()).strip("-") or "cpu"
    return f"pg-rows{rows}-{cpu}-{m['cores']}c"


def render_section(key: str, d: dict) -> str:
    m, s, v = d["machine"], d["server"], d["versions"]
    settings = ", ".join(f"{k}={s[k]}" for k in (
        "fsync", "synchronous_commit", "full_page_writes", "wal_level", "wal_compression",
        "shared_buffers", "max_wal_size", "checkpoint_timeout") if k in s)
    rg = d["row_groups"]
    lines = [
        f"<!-- bench:begin {key} -->",
        f"## PostgreSQL load, {d['rows']:,} rows — {m['cpu']}, {m['cores']} cores",
        "",
        "Written by `python3 bench/pg_load.py --record`; see bench/README.md.",
        "",
        f"- date (UTC): {d['date']}",
        f"- machine: {machine_str(m)}",
        f"- server: PostgreSQL {s['server_version']} on the same machine, a fresh cluster, "
        f"clients over loopback TCP; default settings ({settings})",
        f"- etl: `{d['etl_version']}`",
        f"- duckdb {v.get('duckdb')} with duckdb-ext-postgres {v.get('duckdb-ext-postgres')} "
        f"(threads = {v.get('duckdb_threads')}); psql {s['server_version']}; pandas "
        f"{v.get('pandas')}, SQLAlchemy {v.get('SQLAlchemy')}, psycopg2-binary "
        f"{v.get('psycopg2-binary')}, pyarrow {v.get('pyarrow')}",
        f"- data: bench/generate.py's sales rows; `sales.parquet` {d['rows']:,} rows in "
        f"{len(rg['sales.parquet'])} row groups of ≤ {max(rg['sales.parquet']):,}, "
        f"rowid-sorted, zstd; `sales_grown.parquet` the same rows + {d['delta']:,} new ones "
        f"(last row group {rg['sales_grown.parquet'][-1]:,} rows); the same rows as CSV for "
        f"`\\copy`; pandas and the small etl load read the first {d['small']:,} rows",
        f"- runs: {d['runs']} per engine for the full loads, 1 for pandas, {d['inc_runs']} "
        "for the incremental rerun; median wall time (process start to exit); peak RSS is "
        "the highest `ru_maxrss` of the loading client process (etl, DuckDB's or pandas' "
        "Python, psql) — **the server's own memory is not included**",
        "- before every timed run: a fresh table (dropped after its checks), etl's state reset "
        "(state folder and `etl_state` schema), `CHECKPOINT`; for the rerun, the table was "
        "`VACUUM (ANALYZE)`d after the first load",
        (f"- COPY data for the full load: {d['copy_bytes']['binary'] / 1e6:,.0f} MB in binary "
         f"format (what etl sends; `sales.pgbin`), {d['copy_bytes']['csv'] / 1e6:,.0f} MB as "
         "CSV" if d.get("copy_bytes") else "- COPY data: not measured"),
        "- every loaded table matched the source rows' count, sum(rowid), "
        "sum(price*quantity), sum(price), sums of the id columns and min/max(ts)",
        "",
        tables_md(d["summary"]),
        "",
        "Server CPU is sampled from /proc per server process; *busy* is the client backends' "
        "CPU time over the wall time (100% = one core). WAL from `pg_stat_wal`.",
        "",
        targets_md(d["targets"]),
        "",
    ]
    if "full_duckdb" in d["summary"] and "full_psql" in d["summary"]:
        r = d["summary"]["full_psql"]["median_s"] / d["summary"]["full_duckdb"]["median_s"]
        lines += [f"For reference: DuckDB's load took 1/{r:.2f} of `\\copy`'s time "
                  "(the issue quoted about 1/2.3 on this machine).", ""]
    lines += [f"<!-- bench:data {json.dumps(d, sort_keys=True, default=str)} -->",
              f"<!-- bench:end {key} -->", ""]
    return "\n".join(lines)


def record(d: dict) -> None:
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else \
        "# Benchmark results\n"
    key = section_key(d["rows"], d["machine"])
    section = render_section(key, d)
    match = next((mt for mt in SECTION_RE.finditer(text) if mt.group("key") == key), None)
    if match:
        text = text[: match.start()] + section + text[match.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text, encoding="utf-8")
    log(f"recorded in {rel(RESULTS_MD)} (section {key})")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="PostgreSQL load benchmark: etl against psql, DuckDB and pandas "
                    "(see bench/README.md).")
    ap.add_argument("--rows", type=int, default=10_000_000,
                    help="rows of the full load (default 10_000_000); the rerun adds 1%%")
    ap.add_argument("--runs", type=int, default=3,
                    help="measured runs per engine for the full loads (default 3)")
    ap.add_argument("--inc-runs", type=int, default=5,
                    help="measured incremental reruns (default 5)")
    ap.add_argument("--pandas-rows", type=int, default=1_000_000,
                    help="rows pandas loads (default 1_000_000, at most --rows)")
    ap.add_argument("--etl", metavar="PATH",
                    help="etl binary (default: target/release/etl, built if missing)")
    ap.add_argument("--build", action="store_true",
                    help="run `cargo build --release` first even if the binary exists")
    for what in ("etl", "duckdb", "psql", "pandas", "incremental"):
        ap.add_argument(f"--skip-{what}", action="store_true", help=f"leave out {what}")
    ap.add_argument("--record", action="store_true",
                    help="add or update this machine's section in bench/RESULTS.md")
    ap.add_argument("--data-dir", type=Path, default=BENCH / "data",
                    help="generated data (default bench/data, shared with run.py)")
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out" / "pg",
                    help="logs, etl state, server log and results.json (default bench/out/pg)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds before a single run is killed and the benchmark fails")
    ap.add_argument("--watch", action="store_true",
                    help="sample COPY progress and the backend's wait events every 20 ms "
                         "(analysis; costs CPU, so not with --record)")
    ap.add_argument("--enforce-targets", action="store_true",
                    help="exit with code 3 when a target is missed")
    args = ap.parse_args(argv)
    if args.rows < 100:
        ap.error("--rows must be >= 100")
    if args.runs < 1 or args.inc_runs < 1:
        ap.error("--runs and --inc-runs must be >= 1")
    skipped = [w for w in ("etl", "duckdb", "psql", "pandas", "incremental")
               if getattr(args, f"skip_{w}")]
    if args.record and skipped:
        ap.error(f"--record needs every part; drop --skip-{skipped[0]}")
    if args.record and args.watch:
        ap.error("--watch perturbs the timings; do not --record with it")
    if args.skip_etl and not args.skip_incremental:
        args.skip_incremental = True  # the incremental part is etl's
    args.delta = max(args.rows // 100, 1)
    args.small = min(args.pandas_rows, args.rows)
    args.row_group = max(min(1_000_000, args.rows // 10), 1)
    args.data_dir = args.data_dir.resolve()
    args.out_dir = args.out_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_venv()
    prep = prepare_data(args)
    etl = None if args.skip_etl else find_etl(args.etl, args.build)
    m = machine_info()
    versions = json.loads(subprocess.run([str(VENV_PY), str(WORKLOADS), "version"],
                                         capture_output=True, text=True, check=True).stdout)
    etl_ver = etl_version(etl) if etl else "—"
    log(f"machine: {machine_str(m)}")
    log(f"etl: {etl_ver}{f' ({etl})' if etl else ' (skipped)'}")
    log(f"python side: {versions}")
    warm_page_cache(args.data_dir)

    if args.out_dir.exists():
        shutil.rmtree(args.out_dir)
    args.out_dir.mkdir(parents=True)
    server = Server(args.out_dir)
    try:
        server.start()
        server.sql("CREATE DATABASE bench", db="postgres")
        server.sql(f"CREATE SCHEMA {SCHEMA}")
        settings = server.settings()
        log(f"server: pid {server.pid}, port {server.port}, {settings}")
        b = Bench(args, server, etl, prep["checks"])
        full = [e for e in FULL_ENGINES
                if not getattr(args, f"skip_{e.removesuffix('_bin')}")]
        if full:
            b.phase_full(full)
        if not args.skip_pandas or not args.skip_etl:
            if args.skip_pandas:
                log("small load: skipped (pandas skipped)")
            else:
                b.phase_small(with_etl=not args.skip_etl)
        if not args.skip_incremental:
            b.phase_incremental()
    finally:
        server.stop()
        log("server stopped")
        (args.out_dir / "sales.pgbin").unlink(missing_ok=True)

    rows_of = {n: (args.rows if n.startswith(("full", "inc_first")) else
                   args.small if n.startswith("small") else
                   0 if n == "inc_noop_etl" else args.delta) for n in b.results}
    summary = summarize(b.results, rows_of)
    ts = targets(summary, args.rows)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    data = {
        "date": now, "rows": args.rows, "delta": args.delta, "small": args.small,
        "runs": args.runs, "inc_runs": args.inc_runs, "machine": m, "server": settings,
        "etl_version": etl_ver, "versions": versions, "row_groups": prep["row_groups"],
        "summary": {k: {kk: round(vv, 4) if isinstance(vv, float) else vv
                        for kk, vv in v.items()} for k, v in summary.items()},
        "targets": ts, "column_types": b.column_types, "table_bytes": b.table_bytes,
        "copy_bytes": b.copy_bytes,
    }
    raw = {**data, "checks": b.checks, "expected": prep["checks"],
           "runs_detail": {n: [vars(r) for r in s.runs] for n, s in b.results.items()}}
    (args.out_dir / "results.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")

    print()
    print(f"{args.rows:,} rows; {machine_str(m)}; etl: {etl_ver}; "
          f"PostgreSQL {settings['server_version']}")
    print()
    print(tables_md(summary))
    print()
    print(targets_md(ts))
    print()
    for label, types in b.column_types.items():
        print(f"  {label}: {types}; {b.table_bytes[label] / 2**20:.0f} MiB")

    if b.problems:
        log("VERIFICATION FAILED: a loaded table does not match its source rows")
        for p in b.problems:
            log(f"  - {p}")
        log(f"details: {rel(args.out_dir / 'results.json')}")
        return 1
    log("every loaded table matched its source rows")
    if args.record:
        record(data)
    if args.enforce_targets and any(t["met"] is False for t in ts):
        log("targets missed")
        return 3
    return 0


if __name__ == "__main__":
    cli(main)
