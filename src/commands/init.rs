//! `etl init`: scaffold a pipeline repository.

use std::path::Path;

use super::{EXIT_FAILED, EXIT_OK, Output};
use crate::cli::InitArgs;
use crate::diagnostic::Diagnostic;

const PIPELINE: &str = r#"# An example pipeline: run it with `etl run pipelines/example.yaml`.
name: example
description: Orders per country, from a CSV file to Parquet.

vars:
  data_dir: data
  out_dir: ../out

sources:
  orders:
    type: csv
    path: "{{ data_dir }}/orders.csv"
    schema:
      order_id: bigint
      country: string
      amount: decimal(10,2)

transforms:
  per_country:
    sql: |
      SELECT country, count(*) AS orders, sum(amount) AS revenue
      FROM orders
      GROUP BY country

checks:
  orders:
    - unique: order_id
    - not_null: [country]

sinks:
  per_country_file:
    from: per_country
    type: parquet
    path: "{{ out_dir }}/per_country"

tests:
  sums_per_country:
    given:
      orders:
        rows:
          - { order_id: 1, country: DE, amount: 10.00 }
          - { order_id: 2, country: DE, amount: 5.50 }
    expect:
      per_country:
        rows:
          - { country: DE, orders: 2, revenue: 15.50 }
"#;

const ORDERS: &str = "order_id,country,amount\n1,DE,10.00\n2,FR,7.25\n3,DE,3.10\n";

const GITIGNORE: &str = ".etl/\nout/\n";

/// Writes the scaffold, refusing to overwrite anything.
pub fn init(args: &InitArgs, out: Output) -> u8 {
    let files: [(&str, &str); 3] = [
        ("pipelines/example.yaml", PIPELINE),
        ("pipelines/data/orders.csv", ORDERS),
        (".gitignore", GITIGNORE),
    ];
    for (rel, _) in &files {
        let path = args.dir.join(rel);
        if path.exists() {
            out.diagnostic(&Diagnostic::error(format!(
                "{} already exists; nothing was written",
                path.display()
            )));
            return EXIT_FAILED;
        }
    }
    for (rel, content) in &files {
        let path = args.dir.join(rel);
        if let Err(e) = write(&path, content) {
            out.diagnostic(&Diagnostic::error(format!(
                "cannot write {}: {e}",
                path.display()
            )));
            return EXIT_FAILED;
        }
        out.line(&format!("created {}", path.display()));
    }
    out.line(&format!(
        "next: etl run {}",
        args.dir.join("pipelines/example.yaml").display()
    ));
    EXIT_OK
}

fn write(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)
}
