//! Engine and object-store failures said as what happened, where, and what to do.

use crate::util::*;

#[test]
fn a_file_that_is_not_parquet_is_named_with_what_to_check() {
    let f = Fixture::new();
    f.file("in/x.parquet", "id,name\n1,a\n");
    f.file(
        "p.yaml",
        "sources:\n  s: { type: parquet, path: in/x.parquet }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    let run = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(run.stderr.contains("not a Parquet file"), "{}", run.stderr);
    assert!(run.stderr.contains("p.yaml:2:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("help: check that the file is Parquet"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Parquet error:"), "{}", run.stderr);
}

#[test]
fn division_by_zero_says_how_to_avoid_it() {
    let f = Fixture::new();
    f.file("in.csv", "a,b\n1,0\n");
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: in.csv, schema: { a: bigint, b: bigint } }\ntransforms:\n  t: { sql: \"SELECT a / b AS q FROM s\" }\nsinks:\n  o: { from: t, type: csv, path: out/o.csv }\n",
    );
    let run = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains("sink `o`: division by zero"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("NULLIF(y, 0)"), "{}", run.stderr);
    assert!(!run.stderr.contains("Arrow error"), "{}", run.stderr);
    assert!(!f.path().join("out/o.csv").exists());
}
