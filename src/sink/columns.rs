//! Column conversions before a Parquet file is written: timestamps in microseconds, the
//! unit every Parquet reader takes (Spark, Athena, BigQuery, Snowflake, pandas).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::common::Column;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::DataFrame;

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
    cast_columns(df, |f| in_microseconds(f.data_type()))
}

/// Casts the columns for which `to` gives a type to that type (keeping their names); the
/// frame as it is when there are none.
pub fn cast_columns(
    df: DataFrame,
    to: impl Fn(&Field) -> Option<DataType>,
) -> Result<DataFrame, DataFusionError> {
    if !df.schema().fields().iter().any(|f| to(f).is_some()) {
        return Ok(df);
    }
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, f)| {
            let column = Expr::Column(Column::from((qualifier, f)));
            match to(f) {
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
