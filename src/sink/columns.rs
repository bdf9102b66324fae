//! Column conversions before a file is written: partition values as folder-name text, and
//! Parquet timestamps in microseconds.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion::common::Column;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, cast, lit, when};
use datafusion::prelude::DataFrame;

use crate::diagnostic::Diagnostic;
use crate::model::{Pipeline, Sink};

/// The folder name Hive and Spark use for a NULL partition value; readers (etl's too) read
/// it back as NULL.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// Why a column cannot name a partition folder, if it cannot: lists, structs, maps, binary
/// and the like have no text form for a folder name. Every other type is written as its
/// text (`2024-01-02`, `2024-01-02T10:00:00`, `12.50`), NULL as `__HIVE_DEFAULT_PARTITION__`.
pub fn partition_type_problem(dt: &DataType) -> Option<String> {
    let ok = match dt {
        DataType::Dictionary(_, v) => return partition_type_problem(v),
        DataType::Null
        | DataType::Boolean
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(..)
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => true,
        d => d.is_integer() || d.is_floating(),
    };
    (!ok).then(|| {
        format!(
            "is {}, which has no text form for a folder name",
            crate::types::sql_name(dt)
        )
    })
}

/// Every problem with a sink's `partition_by` given the schema of what it writes: a
/// column that does not exist, or one with no text form. `validate`, dry runs and runs
/// (before any data is read) all ask this, so they agree.
pub fn partition_diagnostics(p: &Pipeline, sink: &Sink, schema: &Schema) -> Vec<Diagnostic> {
    let path = format!("{}.partition_by", sink.yaml_path);
    let at = |d: Diagnostic| d.in_file(&p.file).at_path(path.clone()).at(p.pos(&path));
    let mut out = Vec::new();
    for col in &sink.partition_by {
        match schema.field_with_name(col) {
            Err(_) => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let d = Diagnostic::error(format!(
                    "partition column `{col}` is not a column of `{}`",
                    sink.from
                ));
                let help = crate::diagnostic::did_you_mean(col, names.iter().copied())
                    .unwrap_or_else(|| format!("columns: {}", names.join(", ")));
                out.push(at(d.with_help(help)));
            }
            Ok(f) => {
                if let Some(problem) = partition_type_problem(f.data_type()) {
                    let d = Diagnostic::error(format!("partition column `{col}` {problem}"))
                        .with_help("partition by a column computed in a transform: a string, a number, a date or a timestamp");
                    out.push(at(d));
                }
            }
        }
    }
    out
}

/// Partition columns as the text their folders are named by, NULL as
/// [`HIVE_NULL`]: the writer takes only a few types itself (not timestamps or decimals),
/// and would name a NULL number's folder `0`.
pub fn partition_values_as_text(df: DataFrame, partition_by: &[String]) -> Result<DataFrame, String> {
    if partition_by.is_empty() {
        return Ok(df);
    }
    for col in partition_by {
        if let Ok(field) = df.schema().field_with_unqualified_name(col)
            && let Some(problem) = partition_type_problem(field.data_type())
        {
            return Err(format!("partition column `{col}` {problem}"));
        }
    }
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, f)| {
            let column = Expr::Column(Column::from((qualifier, f)));
            if !partition_by.contains(f.name()) {
                return Ok(column);
            }
            let text = when(column.clone().is_null(), lit(HIVE_NULL))
                .otherwise(cast(column, DataType::Utf8))?;
            Ok(text.alias(f.name()))
        })
        .collect::<Result<_, DataFusionError>>()
        .map_err(|e| e.to_string())?;
    df.select(exprs).map_err(|e| e.to_string())
}

/// `t` with nanosecond timestamps (at any depth) in microseconds; `None` when unchanged.
fn in_microseconds(t: &DataType) -> Option<DataType> {
    let field = |f: &Field| in_microseconds(f.data_type()).map(|d| f.clone().with_data_type(d));
    match t {
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
        }
        DataType::List(f) => field(f).map(|f| DataType::List(Arc::new(f))),
        DataType::LargeList(f) => field(f).map(|f| DataType::LargeList(Arc::new(f))),
        DataType::FixedSizeList(f, n) => field(f).map(|f| DataType::FixedSizeList(Arc::new(f), *n)),
        DataType::Struct(fields) => {
            let changed: Vec<Option<Field>> = fields.iter().map(|f| field(f)).collect();
            if changed.iter().all(Option::is_none) {
                return None;
            }
            let fields: Fields = fields
                .iter()
                .zip(changed)
                .map(|(f, c)| c.unwrap_or_else(|| f.as_ref().clone()))
                .collect();
            Some(DataType::Struct(fields))
        }
        _ => None,
    }
}

/// Casts nanosecond timestamps to microseconds, the unit every Parquet reader takes.
pub fn timestamps_in_microseconds(df: DataFrame) -> Result<DataFrame, DataFusionError> {
    if !df
        .schema()
        .fields()
        .iter()
        .any(|f| in_microseconds(f.data_type()).is_some())
    {
        return Ok(df);
    }
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, f)| {
            let column = Expr::Column(Column::from((qualifier, f)));
            match in_microseconds(f.data_type()) {
                Some(t) => cast(column, t).alias(f.name()),
                None => column,
            }
        })
        .collect();
    df.select(exprs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_types_with_and_without_a_text_form() {
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, None);
        assert_eq!(partition_type_problem(&ts), None);
        assert_eq!(partition_type_problem(&DataType::Decimal128(10, 2)), None);
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert!(partition_type_problem(&list).is_some());
        assert!(partition_type_problem(&DataType::Binary).is_some());
    }

    #[test]
    fn nanoseconds_become_microseconds_at_any_depth() {
        let ns = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let us = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(in_microseconds(&ns), Some(us.clone()));
        let s = DataType::Struct(Fields::from(vec![
            Field::new("at", ns, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let DataType::Struct(f) = in_microseconds(&s).unwrap() else {
            panic!()
        };
        assert_eq!(f[0].data_type(), &us);
        assert_eq!(in_microseconds(&DataType::Int64), None);
    }
}
