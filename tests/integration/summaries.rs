//! The end-of-run summary: fitted to the terminal width, failing rows per check, and the
//! rollup that ends a backfill.

use crate::util::*;

#[test]
fn the_summary_fits_the_terminal_width_and_shows_failing_rows_per_check() {
    let f = Fixture::new();
    f.file("in.csv", "id,x\n1,a\n,b\n3,c\n");
    let deep = "out/a_rather_long_folder_name/another_long_folder_name/report_with_a_long_name.csv";
    f.file(
        "p.yaml",
        &format!(
            "sources:\n  s: {{ type: csv, path: in.csv }}\nchecks:\n  s:\n    - {{ not_null: [id], severity: warn }}\nsinks:\n  o: {{ from: s, type: csv, path: {deep} }}\n"
        ),
    );
    let run = etl_env(f.path(), &["run", "p.yaml"], &[("COLUMNS", "100")]).expect_code(0);
    let table: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with(['┌', '│', '╞', '├', '└']))
        .collect();
    assert!(!table.is_empty(), "{}", run.stdout);
    for l in &table {
        assert!(l.chars().count() <= 100, "wider than 100:\n{}", run.stdout);
    }
    assert!(
        table
            .iter()
            .any(|l| l.contains("s: not_null(id)") && l.contains("1 failing")),
        "{}",
        run.stdout
    );
    // Paths below the current folder are shown relative to it.
    assert!(
        run.stdout.contains("1 file → out/a_rather"),
        "{}",
        run.stdout
    );
    // Wide enough, the same table keeps each row on one line.
    let run = etl_env(f.path(), &["run", "p.yaml"], &[("COLUMNS", "300")]).expect_code(0);
    assert!(
        run.stdout.contains("report_with_a_long_name.csv"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_backfill_ends_with_one_rollup_naming_the_failed_dates() {
    let f = Fixture::new();
    f.file("in/2024-01-01.csv", "id\n1\n2\n");
    f.file("in/2024-01-03.csv", "id\n3\n");
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: \"in/{{ ds }}.csv\" }\nsinks:\n  o: { from: s, type: csv, path: \"out/{{ ds }}.csv\" }\n",
    );
    let run = f
        .run(&[
            "run",
            "p.yaml",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
        ])
        .expect_code(1);
    let out = &run.stdout;
    let row = |ds: &str, status: &str, rows: &str| {
        out.lines().any(|l| {
            let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
            cells.len() >= 4 && cells[1] == ds && cells[2] == status && cells[3] == rows
        })
    };
    assert!(row("2024-01-01", "success", "2"), "{out}");
    assert!(row("2024-01-02", "failed", "0"), "{out}");
    assert!(row("2024-01-03", "success", "1"), "{out}");
    assert!(
        out.contains("p: backfill of 3 dates: 1 failed: 2024-01-02"),
        "{out}"
    );
    // One date is no backfill: no rollup.
    let run = f
        .run(&["run", "p.yaml", "--date", "2024-01-01"])
        .expect_code(0);
    assert!(!run.stdout.contains("backfill"), "{}", run.stdout);
}

#[test]
fn the_summary_shows_rows_read_per_source_once_however_many_read_it() {
    let f = Fixture::new();
    f.file("a.csv", "id,x\n1,a\n2,b\n3,c\n4,d\n5,e\n");
    f.file("b.json", "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 9}\n");
    f.file(
        "p.yaml",
        "sources:\n  a: { type: csv, path: a.csv }\n  b: { type: json, path: b.json }\ntransforms:\n  j: { sql: \"select a.id, x from a join b on a.id = b.id\" }\nsinks:\n  o1: { from: j, type: csv, path: out/j.csv }\n  o2: { from: a, type: csv, path: out/a.csv }\n  o3: { from: a, type: parquet, path: out/a.parquet }\n",
    );
    let run = etl_env(f.path(), &["run", "p.yaml"], &[("COLUMNS", "200")]).expect_code(0);
    let rows_of = |name: &str| -> Option<String> {
        run.stdout
            .lines()
            .find(|l| l.starts_with(&format!("│ {name} ")) && l.contains("source"))
            .and_then(|l| l.split('┆').nth(3))
            .map(|c| c.trim().to_string())
    };
    // `a` is read by the join and two sinks: its rows are counted once, not three times.
    assert_eq!(rows_of("a").as_deref(), Some("5"), "{}", run.stdout);
    assert_eq!(rows_of("b").as_deref(), Some("3"), "{}", run.stdout);
    let mut joined = read_csv(&f.path().join("out/j.csv"), &["id"]);
    joined.sort();
    assert_eq!(joined, [["1"], ["2"]]);
}
