//! Partition columns of file sinks, checked against the schema of what the sink writes:
//! they exist, are listed once, leave a column to write, and have a text form for a
//! `col=value/` folder name. Used by `validate` and by dry runs, once schemas are planned.

use datafusion::arrow::datatypes::Schema;

use crate::diagnostic::{Diagnostic, did_you_mean, name_list};
use crate::model::{Pipeline, Sink};
use crate::types::{PartitionValue, partition_value, sql_name};

/// Every problem with a sink's `partition_by`, given the schema of its `from`.
pub fn partition_problems(p: &Pipeline, sink: &Sink, schema: &Schema) -> Vec<Diagnostic> {
    let path = format!("{}.partition_by", sink.yaml_path);
    let error = |message: String| {
        Diagnostic::error(message)
            .in_file(&p.file)
            .at_path(path.clone())
            .at(p.pos(&path))
    };
    let mut out = Vec::new();
    for (i, col) in sink.partition_by.iter().enumerate() {
        if sink.partition_by[..i].contains(col) {
            out.push(error(format!("partition column `{col}` is listed twice")));
            continue;
        }
        let Ok(field) = schema.field_with_name(col) else {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let d = error(format!(
                "partition column `{col}` is not a column of `{}`",
                sink.from
            ));
            out.push(
                d.with_help(
                    did_you_mean(col, names.iter().copied()).unwrap_or_else(|| {
                        format!("columns: {}", name_list(names.iter().copied()))
                    }),
                ),
            );
            continue;
        };
        if partition_value(field.data_type()) == PartitionValue::Unsupported {
            let d = error(format!(
                "partition column `{col}` is {}, which has no text form for a folder name",
                sql_name(field.data_type())
            ));
            out.push(d.with_help(
                "partition by a column computed in a transform, such as a string, a number or \
                 `CAST(ts AS DATE)`",
            ));
        }
    }
    if !sink.partition_by.is_empty()
        && schema
            .fields()
            .iter()
            .all(|f| sink.partition_by.contains(f.name()))
    {
        out.push(error(format!(
            "every column of `{}` is a partition column: the files would have no columns",
            sink.from
        )));
    }
    out
}
