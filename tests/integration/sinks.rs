//! File sinks: formats, modes, partitions, selection, backfill.

use crate::util::*;

const BASE: &str = r#"
sources:
  items:
    type: inline
    rows:
      - { id: 1, kind: a, ts: "2024-01-01 10:00:00", note: x }
      - { id: 2, kind: b, ts: "2024-01-02 11:30:00", note: null }
      - { id: 3, kind: a, ts: "2024-01-03 12:00:00", note: z }
    schema: { id: bigint, kind: string, ts: timestamp, note: string }
"#;

#[test]
fn csv_single_file_has_header_empty_nulls_and_iso_timestamps() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!("{BASE}sinks:\n  out: {{ from: items, type: csv, path: out/items.csv }}\n"),
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let text = std::fs::read_to_string(f.path().join("out/items.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,kind,ts,note"));
    let rest: Vec<&str> = lines.collect();
    assert!(rest.contains(&"2,b,2024-01-02T11:30:00,"), "{text}");
    assert_eq!(rest.len(), 3);
}

#[test]
fn json_output_is_newline_delimited() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!("{BASE}sinks:\n  out: {{ from: items, type: json, path: out/items.json }}\n"),
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let text = std::fs::read_to_string(f.path().join("out/items.json")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r["id"] == 3 && r["note"] == "z"));
}

#[test]
fn parquet_partitioned_by_column() {
    let f = Fixture::new();
    f.file("p.yaml", &format!("{BASE}sinks:\n  out: {{ from: items, type: parquet, path: out/items, partition_by: [kind] }}\n"));
    f.run(&["run", "p.yaml"]).expect_code(0);
    let files = files_below(&f.path().join("out/items"));
    assert!(files.iter().any(|p| p.starts_with("kind=a/")), "{files:?}");
    assert!(files.iter().any(|p| p.starts_with("kind=b/")), "{files:?}");
    let rows = read_parquet(&f.path().join("out/items"), &["kind"], &["id", "kind"]);
    assert_eq!(rows, vec![vec!["1", "a"], vec!["2", "b"], vec!["3", "a"]]);
}

#[test]
fn overwrite_append_and_error_if_exists() {
    let f = Fixture::new();
    let sink = |mode: &str| {
        format!(
            "{BASE}sinks:\n  out: {{ from: items, type: parquet, path: out/items, mode: {mode} }}\n"
        )
    };
    f.file("p.yaml", &sink("overwrite"));
    f.run(&["run", "p.yaml"]).expect_code(0);
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_parquet(&f.path().join("out/items"), &[], &["id"]).len(),
        3,
        "overwrite replaces"
    );
    f.file("p.yaml", &sink("append"));
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_parquet(&f.path().join("out/items"), &[], &["id"]).len(),
        6,
        "append adds"
    );
    f.file("p.yaml", &sink("error_if_exists"));
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(
        read_parquet(&f.path().join("out/items"), &[], &["id"]).len(),
        6,
        "left alone"
    );
}

#[test]
fn append_to_a_single_file_path_is_invalid() {
    let f = Fixture::new();
    f.file("p.yaml", &format!("{BASE}sinks:\n  out: {{ from: items, type: parquet, path: out/items.parquet, mode: append }}\n"));
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("(sinks.out.mode)"), "{}", r.stderr);
}

#[test]
fn select_runs_only_the_named_sink() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!("{BASE}sinks:\n  one: {{ from: items, type: csv, path: out/one.csv }}\n  two: {{ from: items, type: csv, path: out/two.csv }}\n"),
    );
    f.run(&["run", "p.yaml", "--select", "two"]).expect_code(0);
    assert!(!f.path().join("out/one.csv").exists());
    assert!(f.path().join("out/two.csv").exists());
}

#[test]
fn backfill_runs_once_per_date_with_ds() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            "{BASE}transforms:\n  day:\n    sql: \"SELECT id, '{{{{ ds }}}}' AS ds FROM items WHERE CAST(ts AS DATE) = DATE '{{{{ ds }}}}'\"\nsinks:\n  out: {{ from: day, type: csv, path: \"out/{{{{ ds_nodash }}}}.csv\" }}\n"
        ),
    );
    f.run(&[
        "run",
        "p.yaml",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
    ])
    .expect_code(0);
    for (d, id) in [("20240101", "1"), ("20240102", "2"), ("20240103", "3")] {
        let rows = read_csv(&f.path().join(format!("out/{d}.csv")), &["id"]);
        assert_eq!(rows, vec![vec![id.to_string()]], "{d}");
    }
    assert_eq!(
        files_below(&f.path().join(".etl/runs")).len(),
        3,
        "one run record per date"
    );
}

#[test]
fn dry_run_writes_nothing() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!("{BASE}sinks:\n  out: {{ from: items, type: csv, path: out/items.csv }}\n"),
    );
    let r = f.run(&["run", "p.yaml", "--dry-run"]).expect_code(0);
    assert!(r.stdout.contains("dry run"), "{}", r.stdout);
    assert!(!f.path().join("out").exists());
}

#[test]
fn memory_limit_bounds_a_large_sort_that_spills_to_disk() {
    let f = Fixture::new();
    let mut csv = String::from("k,v\n");
    for i in 0..400_000u64 {
        // A scrambled key so the sort has real work to do.
        csv.push_str(&format!("{},{}\n", (i * 7_919) % 400_000, "x".repeat(20)));
    }
    f.file("d/big.csv", &csv);
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d/big.csv, schema: { k: bigint, v: string } }\ntransforms:\n  sorted:\n    sql: SELECT k, v FROM s ORDER BY k DESC\nsinks:\n  o: { from: sorted, type: csv, path: out/sorted.csv }\n",
    );
    let spill = f.path().join("spill");
    f.run(&[
        "run",
        "p.yaml",
        "--memory-limit",
        "24MB",
        "--spill-dir",
        spill.to_str().unwrap(),
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(f.path().join("out/sorted.csv")).unwrap();
    let keys: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(keys.len(), 400_000);
    assert!(keys.windows(2).all(|w| w[0] >= w[1]), "sorted descending");
    // The limit is enforced: far too little memory is a run failure that says so.
    let r = f
        .run(&["run", "p.yaml", "--memory-limit", "1MB"])
        .expect_code(1);
    assert!(r.stderr.contains("out of memory"), "{}", r.stderr);
    assert!(
        r.stderr.contains("help: raise `--memory-limit`"),
        "{}",
        r.stderr
    );
}
