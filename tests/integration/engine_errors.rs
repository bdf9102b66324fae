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

#[test]
fn csv_rows_of_the_wrong_width_and_values_of_the_wrong_type_say_where_and_what_to_do() {
    let f = Fixture::new();
    f.file("f.csv", "id,x\n1,a\n2,b,c\n3,d\n");
    f.file("g.csv", "id,x\n1,a\nzz,b\n");
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: f.csv }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    f.file(
        "q.yaml",
        "sources:\n  s: { type: csv, path: g.csv, schema: { id: bigint, x: string } }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    let run = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains("a row has the wrong number of fields")
            && run.stderr.contains("line 3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("p.yaml:2:25"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("help: check `options: { delimiter, quote }`"),
        "{}",
        run.stderr
    );
    let run = f.run(&["run", "q.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("g.csv:3: column `id`: `zz` is not a valid bigint"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("help: fix the row"), "{}", run.stderr);
    assert!(!f.path().join("out").exists(), "nothing written");
}
