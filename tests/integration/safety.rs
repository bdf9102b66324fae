//! Never lose a user's data: sink paths that overlap what the run reads or owns, targets
//! holding files etl did not write, one run at a time, and all-or-nothing commits across
//! sinks, tested by killing the process at every commit step.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const ORDERS: &str = "id,amount\n1,10\n2,20\n";

/// A pipeline reading `data/orders.csv` and writing one sink with the given path.
fn with_sink_path(path: &str) -> String {
    format!(
        "sources:\n  orders: {{ type: csv, path: data/orders.csv }}\nsinks:\n  out:\n    from: orders\n    type: parquet\n    path: \"{path}\"\n"
    )
}

#[test]
fn sink_paths_overlapping_inputs_state_or_other_sinks_are_invalid() {
    let cases: &[(&str, &str)] = &[
        ("data/orders.csv", "is the input of source `orders`"),
        ("data", "contains the input of source `orders`"),
        (".", "contains the input of source `orders`"),
        ("p.yaml", "is the pipeline file"),
        (".etl", "is the state folder"),
        (".etl/runs", "lies inside the state folder"),
        ("..", "contains the input of source `orders`"),
        (
            "sub/../data/./orders.csv",
            "is the input of source `orders`",
        ),
        ("linked", "is the input of source `orders`"),
    ];
    for (path, expected) in cases {
        let f = Fixture::new();
        f.file("data/orders.csv", ORDERS);
        f.file("p.yaml", &with_sink_path(path));
        std::os::unix::fs::symlink(f.path().join("data/orders.csv"), f.path().join("linked"))
            .unwrap();
        let r = f.run(&["validate", "p.yaml"]).expect_code(2);
        assert!(r.stderr.contains(expected), "{path}: {}", r.stderr);
        assert!(
            r.stderr.contains("sink `out` writes to"),
            "{path}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("p.yaml:7:11 (sinks.out.path)"),
            "{path}: {}",
            r.stderr
        );
        // `run` refuses the same way and nothing is lost.
        f.run(&["run", "p.yaml"]).expect_code(2);
        assert_eq!(
            std::fs::read_to_string(f.path().join("data/orders.csv")).unwrap(),
            ORDERS
        );
        assert!(f.path().join("p.yaml").exists());
    }
}

#[test]
fn glob_bases_cwd_sql_files_and_other_sinks_are_protected() {
    let f = Fixture::new();
    f.file("data/sales/a.csv", ORDERS);
    f.file("sql/t.sql", "SELECT * FROM sales");
    let body = |sink_a: &str, sink_b: &str| {
        format!(
            "sources:\n  sales: {{ type: csv, path: \"data/sales/*.csv\" }}\ntransforms:\n  t: {{ sql_file: sql/t.sql }}\nsinks:\n  a: {{ from: t, type: parquet, path: \"{sink_a}\" }}\n  b: {{ from: t, type: csv, path: \"{sink_b}\" }}\n"
        )
    };
    let cases = [
        (
            "data/sales/out",
            "out/b",
            "lies inside the folder read by the glob of source `sales`",
        ),
        ("out/a", "sql", "contains the SQL file of transform `t`"),
        ("out/a", "out/a", "is the path of sink `a`"),
        ("out", "out/summary", "lies inside the path of sink `a`"),
        ("out/a/b", "out/a", "contains the path of sink `a`"),
    ];
    for (a, b, expected) in cases {
        f.file("p.yaml", &body(a, b));
        let r = f.run(&["validate", "p.yaml"]).expect_code(2);
        assert!(r.stderr.contains(expected), "{a} {b}: {}", r.stderr);
    }
    // The working directory: run from a folder below a sink's path.
    f.file("p.yaml", &body("out/a", "out/b"));
    std::fs::create_dir_all(f.path().join("out/a/inner")).unwrap();
    let r = etl(
        &f.path().join("out/a/inner"),
        &["validate", "../../../p.yaml"],
    )
    .expect_code(2);
    assert!(
        r.stderr.contains("contains the working directory"),
        "{}",
        r.stderr
    );
    // From the fixture root it is fine.
    f.run(&["validate", "p.yaml"]).expect_code(0);
}

const ITEMS: &str = "vars:\n  gen: 1\nsources:\n  items:\n    type: inline\n    rows:\n      - { id: 1, gen: \"{{ gen }}\" }\n      - { id: 2, gen: \"{{ gen }}\" }\n    schema: { id: bigint, gen: string }\n";

fn items_pipeline(sinks: &str) -> String {
    format!("{ITEMS}sinks:\n{sinks}")
}

#[test]
fn a_foreign_file_in_an_overwrite_target_is_left_untouched() {
    let f = Fixture::new();
    f.file("notes/keep.txt", "my notes");
    // A source that fails when read: the refusal comes before any data is read.
    f.file("bad.csv", "id\nnot-a-number\n");
    let body = "sources:\n  bad: { type: csv, path: bad.csv, schema: { id: bigint } }\nsinks:\n  out: { from: bad, type: parquet, path: notes }\n";
    f.file("p.yaml", body);
    let r = f.run(&["run", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("notes/keep.txt"), "{}", r.stderr);
    assert!(r.stderr.contains("replace_existing: true"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(f.path().join("notes/keep.txt")).unwrap(),
        "my notes"
    );
    // A single file that etl did not write is protected too.
    f.file("report.csv", "mine\n");
    f.file(
        "q.yaml",
        &items_pipeline("  out: { from: items, type: csv, path: report.csv }\n"),
    );
    let r = f.run(&["run", "q.yaml"]).expect_code(2);
    assert!(r.stderr.contains("report.csv"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(f.path().join("report.csv")).unwrap(),
        "mine\n"
    );
    // `replace_existing: true` lets the sink take the path over; later runs replace their own.
    f.file(
        "q.yaml",
        &items_pipeline(
            "  out: { from: items, type: csv, path: report.csv, replace_existing: true }\n",
        ),
    );
    f.run(&["run", "q.yaml"]).expect_code(0);
    f.file(
        "q.yaml",
        &items_pipeline("  out: { from: items, type: csv, path: report.csv }\n"),
    );
    f.run(&["run", "q.yaml", "--var", "gen=2"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("report.csv"), &["gen"]),
        vec![vec!["2"], vec!["2"]]
    );
    // A file dropped into our own output folder later is foreign too.
    f.file(
        "r.yaml",
        &items_pipeline("  out: { from: items, type: parquet, path: out/items }\n"),
    );
    f.run(&["run", "r.yaml"]).expect_code(0);
    f.file("out/items/extra.parquet", "someone else's");
    let r = f.run(&["run", "r.yaml"]).expect_code(2);
    assert!(r.stderr.contains("extra.parquet"), "{}", r.stderr);
    assert!(f.path().join("out/items/extra.parquet").exists());
    // Another pipeline's sink of the same name does not own it either.
    f.file(
        "s.yaml",
        &items_pipeline("  out: { from: items, type: parquet, path: out/items2 }\n"),
    );
    f.file(
        "r.yaml",
        &items_pipeline("  out: { from: items, type: parquet, path: out/items2 }\n"),
    );
    f.run(&["run", "s.yaml"]).expect_code(0);
    f.run(&["run", "r.yaml"]).expect_code(2);
    // Append removes nothing, so it may add beside foreign files, and keeps them.
    f.file("notes/more.txt", "more");
    f.file(
        "a.yaml",
        &items_pipeline("  out: { from: items, type: parquet, path: notes, mode: append }\n"),
    );
    f.run(&["run", "a.yaml"]).expect_code(0);
    f.run(&["run", "a.yaml"]).expect_code(0);
    assert!(f.path().join("notes/keep.txt").exists() && f.path().join("notes/more.txt").exists());
    assert_eq!(read_parquet(&f.path().join("notes"), &[], &["id"]).len(), 4);
}

/// The lock file of pipeline `name` in the default state folder.
fn lock_file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(".etl/pipelines").join(name).join("lock")
}

#[test]
fn a_second_run_exits_3_naming_the_holder_or_waits_for_the_lock() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &items_pipeline("  out: { from: items, type: parquet, path: out/items }\n"),
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    // Hold the lock as another process would.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock_file(f.path(), "p"))
        .unwrap();
    lock.lock().unwrap();
    std::fs::write(
        lock_file(f.path(), "p"),
        "4242, started 2026-01-01 00:00:00 UTC, run r1",
    )
    .unwrap();
    let t = Instant::now();
    let r = f.run(&["run", "p.yaml", "--var", "gen=2"]).expect_code(3);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        r.stderr
            .contains("pid 4242, started 2026-01-01 00:00:00 UTC"),
        "{}",
        r.stderr
    );
    f.run(&["state", "p.yaml"]).expect_code(3);
    let r = f.run(&["run", "p.yaml", "--wait", "300ms"]).expect_code(3);
    assert!(r.stderr.contains("gave up after waiting"), "{}", r.stderr);
    // validate, explain, preview and test take no lock.
    f.run(&["validate", "p.yaml"]).expect_code(0);
    f.run(&["preview", "p.yaml", "items"]).expect_code(0);
    f.run(&["run", "p.yaml", "--dry-run"]).expect_code(0);
    // A waiting run goes ahead once the lock is released.
    let child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["run", "p.yaml", "--var", "gen=3", "--wait"])
        .current_dir(f.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_parquet(&f.path().join("out/items"), &[], &["gen"]),
        vec![vec!["3"], vec!["3"]]
    );
}

#[test]
fn two_overlapping_runs_never_touch_each_others_staging() {
    let f = Fixture::new();
    f.file("p.yaml", &items_pipeline("  out: { from: items, type: parquet, path: out/items }\n  csv: { from: items, type: csv, path: out/items.csv }\n"));
    let go = f.path().join("go");
    // Run A stops after staging its output, holding the lock.
    let a = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["run", "p.yaml", "--var", "gen=A"])
        .current_dir(f.path())
        .env("ETL_FAULT", format!("staged:1:wait={}", go.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let staged = || -> Vec<String> {
        std::fs::read_dir(f.path().join("out"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".etl-tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let t = Instant::now();
    while staged().len() < 2 {
        assert!(t.elapsed() < Duration::from_secs(60), "run A never staged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = staged();
    let r = f.run(&["run", "p.yaml", "--var", "gen=B"]).expect_code(3);
    assert!(
        r.stderr.contains(&format!("pid {}", a.id())),
        "{}",
        r.stderr
    );
    assert_eq!(staged(), before, "run B left run A's staging alone");
    std::fs::write(&go, "").unwrap();
    let out = a.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(staged().is_empty());
    assert_eq!(
        read_parquet(&f.path().join("out/items"), &[], &["gen"]),
        vec![vec!["A"], vec!["A"]]
    );
    assert_eq!(
        read_csv(&f.path().join("out/items.csv"), &["gen"]),
        vec![vec!["A"], vec!["A"]]
    );
}

const THREE_SINKS: &str = "  pq: { from: items, type: parquet, path: out/pq }\n  csv: { from: items, type: csv, path: out/items.csv }\n  parts: { from: items, type: parquet, path: out/parts, partition_by: [id] }\n";

/// The generation each sink holds (`None` when its target is missing).
fn generations(dir: &Path) -> Vec<Option<String>> {
    let one = |rows: Vec<Vec<String>>| -> Option<String> {
        let mut gens: Vec<String> = rows.into_iter().map(|r| r[0].clone()).collect();
        gens.dedup();
        assert!(gens.len() <= 1, "a sink mixes generations: {gens:?}");
        gens.pop()
    };
    vec![
        dir.join("out/pq")
            .exists()
            .then(|| one(read_parquet(&dir.join("out/pq"), &[], &["gen"])))
            .flatten(),
        dir.join("out/items.csv")
            .exists()
            .then(|| one(read_csv(&dir.join("out/items.csv"), &["gen"])))
            .flatten(),
        dir.join("out/parts")
            .exists()
            .then(|| one(read_parquet(&dir.join("out/parts"), &["id"], &["gen"])))
            .flatten(),
    ]
}

fn leftovers(dir: &Path) -> Vec<String> {
    files_below(&dir.join("out"))
        .into_iter()
        .filter(|n| n.contains(".etl-tmp-") || n.contains(".etl-old-"))
        .collect()
}

#[test]
fn a_kill_at_any_commit_step_leaves_all_sinks_at_the_old_run_or_all_at_the_new() {
    for recover_with in ["state", "run"] {
        let f = Fixture::new();
        f.file("p.yaml", &items_pipeline(THREE_SINKS));
        let mut k = 1;
        loop {
            // Start from the old generation everywhere.
            f.run(&["run", "p.yaml", "--var", "gen=old"]).expect_code(0);
            let old = Some("old".to_string());
            assert_eq!(generations(f.path()), vec![old.clone(); 3]);
            let r = etl_env(
                f.path(),
                &["run", "p.yaml", "--var", "gen=new"],
                &[("ETL_FAULT", &format!("commit:{k}"))],
            );
            if r.code == 0 {
                assert!(k > 6, "only {k} commit steps were exercised");
                break;
            }
            assert_eq!(r.code, -1, "killed at step {k}: {}", r.stderr);
            // No target is ever missing, not even before recovery.
            let after_kill = generations(f.path());
            assert!(
                after_kill.iter().all(Option::is_some),
                "step {k}: a target is missing: {after_kill:?}"
            );
            if recover_with == "state" {
                let r = f.run(&["state", "p.yaml"]).expect_code(0);
                let g = generations(f.path());
                assert!(
                    g[0] == g[1] && g[1] == g[2],
                    "step {k}: sinks disagree after recovery: {g:?}\n{}",
                    r.stdout
                );
            } else {
                // The next run finishes or undoes the commit before it does anything else.
                f.run(&["run", "p.yaml", "--var", "gen=again", "--select", "csv"])
                    .expect_code(0);
                let g = generations(f.path());
                assert!(
                    g[0] == g[2],
                    "step {k}: sinks disagree after recovery by a run: {g:?}"
                );
                assert_eq!(g[1].as_deref(), Some("again"));
            }
            assert!(
                leftovers(f.path()).is_empty(),
                "step {k}: {:?}",
                leftovers(f.path())
            );
            k += 1;
        }
    }
}

#[test]
fn state_shows_the_last_commit_and_stale_staging_is_removed() {
    let f = Fixture::new();
    f.file("p.yaml", &items_pipeline(THREE_SINKS));
    let r = f.run(&["state", "p.yaml"]).expect_code(0);
    assert!(r.stdout.contains("last commit: none yet"), "{}", r.stdout);
    // A run killed after staging, before its commit, leaves staging that no one reads.
    let r = etl_env(f.path(), &["run", "p.yaml"], &[("ETL_FAULT", "staged:1")]);
    assert_eq!(r.code, -1, "{}", r.stderr);
    assert!(!leftovers(f.path()).is_empty());
    // Another pipeline's staging beside the same path is not ours to remove.
    f.file("out/.pq.etl-tmp-0badcafe-0123/part.parquet", "theirs");
    f.run(&["run", "p.yaml", "--date", "2024-05-01"])
        .expect_code(0);
    assert_eq!(
        leftovers(f.path()),
        vec![".pq.etl-tmp-0badcafe-0123/part.parquet"]
    );
    let r = f
        .run(&["state", "p.yaml", "--log-format", "json"])
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["last_commit"]["ds"], "2024-05-01");
    assert_eq!(v["last_commit"]["sinks"].as_array().unwrap().len(), 3);
    assert_eq!(v["last_commit"]["sinks"][1]["rows"], 2);
}

#[test]
fn preview_and_explain_leave_no_trace() {
    let f = Fixture::new();
    f.file("d.csv", "id\n1\nx\n3\n");
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d.csv, schema: { id: bigint }, on_bad_row: quarantine }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["preview", "p.yaml", "s"]).expect_code(0);
    assert!(r.stdout.contains("2 rows shown"), "{}", r.stdout);
    f.run(&["explain", "p.yaml"]).expect_code(0);
    f.run(&["validate", "p.yaml"]).expect_code(0);
    f.run(&["run", "p.yaml", "--dry-run"]).expect_code(0);
    assert!(
        !f.path().join(".etl").exists(),
        "{:?}",
        files_below(f.path())
    );
    assert!(!f.path().join("out").exists());
}
