//! `after_commit` on file sources: the files a run read move (or go) once every sink
//! committed; a failed run moves nothing; a file that arrives or changes during the run is
//! not touched; a crash between the commit and the moves is finished by the next command.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const MOVE: &str = r#"
sources:
  drops:
    type: csv
    path: raw/*.csv
    after_commit: { move_to: "archived/{{ ds }}" }
sinks:
  all: { from: drops, type: csv, path: out/all.csv }
"#;

/// Two files the source reads, and one in a subfolder that it does not read (a folder or a
/// glob reads the files directly in it), so it must not be touched either.
fn drop_files(f: &Fixture) {
    f.file("raw/a.csv", "id,v\n1,a\n2,b\n");
    f.file("raw/b.csv", "id,v\n3,c\n");
    f.file("raw/sub/old.csv", "id,v\n99,old\n");
}

#[test]
fn the_files_read_move_once_every_sink_committed() {
    let f = Fixture::new();
    f.file("p.yaml", MOVE);
    drop_files(&f);
    let r = f
        .run(&["run", "p.yaml", "--date", "2024-06-01"])
        .expect_code(0);
    assert_eq!(read_csv(&f.path().join("out/all.csv"), &["id"]).len(), 3);
    assert_eq!(
        files_below(&f.path().join("archived")),
        ["2024-06-01/a.csv", "2024-06-01/b.csv"],
        "the files read, moved"
    );
    assert_eq!(
        files_below(&f.path().join("raw")),
        ["sub/old.csv"],
        "not read, not moved"
    );
    assert!(
        r.stdout.contains("after commit: moved 2 files"),
        "{}",
        r.stdout
    );

    // A file of the same name arriving later does not replace the archived one.
    f.file("raw/a.csv", "id,v\n9,z\n");
    f.run(&["run", "p.yaml", "--date", "2024-06-01"])
        .expect_code(0);
    let archived = files_below(&f.path().join("archived/2024-06-01"));
    assert_eq!(archived.len(), 3, "{archived:?}");
    assert_eq!(
        std::fs::read_to_string(f.path().join("archived/2024-06-01/a.csv")).unwrap(),
        "id,v\n1,a\n2,b\n"
    );
}

#[test]
fn a_failed_run_moves_nothing() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!("{MOVE}checks:\n  drops:\n    - row_count: {{ max: 1 }}\n"),
    );
    drop_files(&f);
    f.run(&["run", "p.yaml"]).expect_code(1);
    assert_eq!(
        files_below(&f.path().join("raw")),
        ["a.csv", "b.csv", "sub/old.csv"]
    );
    assert!(!f.path().join("archived").exists());
}

#[test]
fn delete_removes_exactly_the_files_read() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        "sources:\n  drops:\n    type: json\n    path: raw/\n    schema: { id: int }\n    after_commit: { delete: true }\nsinks:\n  all: { from: drops, type: parquet, path: out/all, mode: append }\n",
    );
    f.file("raw/a.json", "{\"id\": 1}\n");
    f.file("raw/notes.txt", "not json: not read, not deleted");
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("after commit: deleted 1 file"),
        "{}",
        r.stdout
    );
    assert_eq!(files_below(&f.path().join("raw")), ["notes.txt"]);
    // Nothing new: an empty read (the schema is declared), nothing to move.
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_parquet(&f.path().join("out/all"), &[], &["id"]),
        [["1"]]
    );
}

#[test]
fn files_that_arrive_or_change_during_the_run_are_not_touched() {
    let f = Fixture::new();
    f.file("p.yaml", MOVE);
    drop_files(&f);
    let go = f.path().join("go");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["run", "p.yaml", "--date", "2024-06-01"])
        .current_dir(f.path())
        .env("ETL_FAULT", format!("staged:1:wait={}", go.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The run has read and staged everything once its sink's staging folder exists.
    let start = Instant::now();
    while !std::fs::read_dir(f.path().join("out"))
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("etl-tmp"))
        })
        .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not stage"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the sink finish writing (the run then waits at the fault point).
    std::thread::sleep(Duration::from_millis(500));
    f.file("raw/c.csv", "id,v\n4,d\n");
    f.file("raw/b.csv", "id,v\n3,c\n5,changed\n");
    std::fs::write(&go, "").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        read_csv(&f.path().join("out/all.csv"), &["id"]).len(),
        3,
        "read before the changes"
    );
    assert_eq!(
        files_below(&f.path().join("archived")),
        ["2024-06-01/a.csv"]
    );
    assert_eq!(
        files_below(&f.path().join("raw")),
        ["b.csv", "c.csv", "sub/old.csv"],
        "new and changed files stay"
    );
    // The next run reads them.
    let r = f
        .run(&["run", "p.yaml", "--date", "2024-06-02"])
        .expect_code(0);
    assert_eq!(read_csv(&f.path().join("out/all.csv"), &["id"]).len(), 3);
    assert_eq!(
        files_below(&f.path().join("raw")),
        ["sub/old.csv"],
        "{}",
        r.stdout
    );
}

#[test]
fn a_crash_between_the_commit_and_the_moves_is_finished_next_time() {
    let f = Fixture::new();
    f.file("p.yaml", MOVE);
    drop_files(&f);
    let r = etl_env(
        f.path(),
        &["run", "p.yaml", "--date", "2024-06-01"],
        &[("ETL_FAULT", "after_commit:1")],
    );
    assert_eq!(r.code, -1, "killed after the first move: {}", r.stderr);
    assert_eq!(
        files_below(&f.path().join("raw")).len(),
        2,
        "one moved, one left (and sub/)"
    );
    assert_eq!(
        read_csv(&f.path().join("out/all.csv"), &["id"]).len(),
        3,
        "committed"
    );
    let r = f.run(&["state", "p.yaml"]).expect_code(0);
    assert!(
        r.stderr.contains("rolled forward") || r.stdout.contains("rolled forward"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(files_below(&f.path().join("raw")), ["sub/old.csv"]);
    assert_eq!(files_below(&f.path().join("archived")).len(), 2);
}

#[test]
fn a_run_of_some_sinks_leaves_the_files_for_the_others() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!("{MOVE}  copy: {{ from: drops, type: csv, path: out/copy.csv }}\n"),
    );
    drop_files(&f);
    let r = f.run(&["run", "p.yaml", "--select", "all"]).expect_code(0);
    assert!(
        r.stderr.contains("after_commit skipped: sink `copy`"),
        "{}",
        r.stderr
    );
    assert_eq!(files_below(&f.path().join("raw")).len(), 3);
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(files_below(&f.path().join("raw")), ["sub/old.csv"]);
}

#[test]
fn a_destination_inside_the_folder_read_is_refused() {
    let f = Fixture::new();
    f.file("p.yaml", &MOVE.replace("archived/{{ ds }}", "raw/done"));
    drop_files(&f);
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("would be read again"), "{}", r.stderr);
    assert!(r.stderr.contains("p.yaml:6:30"), "{}", r.stderr);
    f.file(
        "p.yaml",
        &MOVE.replace("move_to: \"archived/{{ ds }}\"", "delete: false"),
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("`move_to: <folder>` or `delete: true`"),
        "{}",
        r.stderr
    );
}
