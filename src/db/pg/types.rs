//! PostgreSQL column types and their Arrow counterparts, both ways.
//!
//! Reading maps each column's type (after domains are unwrapped and enums read as text) to an
//! Arrow type; writing maps an Arrow type to the type of a new column. The binary codec
//! (`decode`, `encode`) works from [`PgScalar`], one variant per wire encoding.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use tokio_postgres::types::{Kind, Type};

/// The extension name Arrow uses for UUIDs (on `FixedSizeBinary(16)`).
pub const UUID_EXTENSION: &str = "arrow.uuid";

/// A Postgres scalar type, as far as the binary format is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgScalar {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric(p, s)`; unconstrained numeric reads as (38, 10).
    Numeric {
        /// Precision.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// `text`, `varchar`, `char`, `name`, enums, `json`, `xml`-like text.
    Text,
    /// `jsonb` (a version byte, then text).
    Jsonb,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time` (without time zone).
    Time,
    /// `timestamp` (without time zone).
    Timestamp,
    /// `timestamptz`.
    Timestamptz,
    /// `interval`.
    Interval,
    /// `uuid`.
    Uuid,
}

/// A column as the codec sees it: one scalar, or a one-dimensional array of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// The scalar (the element type for arrays).
    pub scalar: PgScalar,
    /// True for arrays.
    pub array: bool,
    /// OID of the element type, for writing arrays (the server checks it).
    pub elem_oid: u32,
}

/// A column that cannot be read or written, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("column `{column}` has type `{type_name}`, which etl cannot {action}{hint}")]
pub struct Unsupported {
    /// The column.
    pub column: String,
    /// The Postgres (or Arrow) type.
    pub type_name: String,
    /// "read" or "write".
    pub action: &'static str,
    /// How to get around it.
    pub hint: String,
}

/// The precision and scale in a numeric type modifier (`-1` when unconstrained).
pub fn numeric_typmod(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = ((t >> 16) & 0xffff) as u8;
    let scale = (t & 0xffff) as i16;
    (precision > 0 && precision <= 76 && (0..=precision as i16).contains(&scale))
        .then_some((precision, scale as i8))
}

fn scalar_of(ty: &Type, typmod: i32) -> Option<PgScalar> {
    Some(match ty.kind() {
        Kind::Enum(_) => PgScalar::Text,
        Kind::Domain(base) => return scalar_of(base, typmod),
        Kind::Simple => match *ty {
            Type::BOOL => PgScalar::Bool,
            Type::INT2 => PgScalar::Int2,
            Type::INT4 => PgScalar::Int4,
            Type::INT8 => PgScalar::Int8,
            Type::FLOAT4 => PgScalar::Float4,
            Type::FLOAT8 => PgScalar::Float8,
            Type::NUMERIC => {
                let (precision, scale) = numeric_typmod(typmod).unwrap_or((38, 10));
                PgScalar::Numeric { precision, scale }
            }
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::CHAR => {
                PgScalar::Text
            }
            Type::JSONB => PgScalar::Jsonb,
            Type::BYTEA => PgScalar::Bytea,
            Type::DATE => PgScalar::Date,
            Type::TIME => PgScalar::Time,
            Type::TIMESTAMP => PgScalar::Timestamp,
            Type::TIMESTAMPTZ => PgScalar::Timestamptz,
            Type::INTERVAL => PgScalar::Interval,
            Type::UUID => PgScalar::Uuid,
            _ => return None,
        },
        _ => return None,
    })
}

/// The codec type of a column read from or written to Postgres.
pub fn pg_type(
    column: &str,
    ty: &Type,
    typmod: i32,
    action: &'static str,
) -> Result<PgType, Unsupported> {
    let unsupported = |hint: &str| Unsupported {
        column: column.to_string(),
        type_name: ty.name().to_string(),
        action,
        hint: hint.to_string(),
    };
    let cast_hint = "; cast it in a `query:` (for example `SELECT col::text`)";
    match ty.kind() {
        Kind::Array(elem) => {
            let elem_base = match elem.kind() {
                Kind::Domain(b) => b,
                _ => elem,
            };
            let scalar = scalar_of(elem_base, -1).ok_or_else(|| unsupported(cast_hint))?;
            Ok(PgType {
                scalar,
                array: true,
                elem_oid: elem.oid(),
            })
        }
        Kind::Domain(base) => pg_type(column, base, typmod, action),
        _ => {
            let scalar = scalar_of(ty, typmod).ok_or_else(|| unsupported(cast_hint))?;
            Ok(PgType {
                scalar,
                array: false,
                elem_oid: ty.oid(),
            })
        }
    }
}

/// The Arrow type a Postgres scalar reads as.
pub fn arrow_scalar(s: PgScalar) -> DataType {
    match s {
        PgScalar::Bool => DataType::Boolean,
        PgScalar::Int2 => DataType::Int16,
        PgScalar::Int4 => DataType::Int32,
        PgScalar::Int8 => DataType::Int64,
        PgScalar::Float4 => DataType::Float32,
        PgScalar::Float8 => DataType::Float64,
        PgScalar::Numeric { precision, scale } if precision <= 38 => {
            DataType::Decimal128(precision, scale)
        }
        PgScalar::Numeric { precision, scale } => DataType::Decimal256(precision, scale),
        PgScalar::Text | PgScalar::Jsonb => DataType::Utf8,
        PgScalar::Bytea => DataType::Binary,
        PgScalar::Date => DataType::Date32,
        PgScalar::Time => DataType::Time64(TimeUnit::Microsecond),
        PgScalar::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        PgScalar::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        PgScalar::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        PgScalar::Uuid => DataType::FixedSizeBinary(16),
    }
}

/// The Arrow field of a column read from Postgres (UUIDs carry Arrow's uuid extension).
pub fn arrow_field(name: &str, t: &PgType) -> Field {
    let scalar = scalar_field("item", t.scalar);
    if t.array {
        Field::new(name, DataType::List(Arc::new(scalar)), true)
    } else {
        scalar.with_name(name)
    }
}

fn scalar_field(name: &str, s: PgScalar) -> Field {
    let f = Field::new(name, arrow_scalar(s), true);
    if s == PgScalar::Uuid {
        f.with_metadata(
            [(
                "ARROW:extension:name".to_string(),
                UUID_EXTENSION.to_string(),
            )]
            .into(),
        )
    } else {
        f
    }
}

/// True for a field Arrow marks as a UUID.
pub fn is_uuid_field(f: &Field) -> bool {
    matches!(f.data_type(), DataType::FixedSizeBinary(16))
        && f.metadata().get("ARROW:extension:name").map(String::as_str) == Some(UUID_EXTENSION)
}

/// The SQL type of a new column for an Arrow field (when a sink creates its table).
pub fn sql_type_for(f: &Field) -> Result<String, Unsupported> {
    let unsupported = || Unsupported {
        column: f.name().clone(),
        type_name: f.data_type().to_string(),
        action: "write",
        hint: "; cast it in a transform (for example to a string)".into(),
    };
    if is_uuid_field(f) {
        return Ok("uuid".into());
    }
    Ok(match f.data_type() {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s < 0 {
                format!("numeric({},0)", (*p as i16 - *s as i16).min(1000))
            } else {
                format!("numeric({p},{s})")
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::Dictionary(_, v) => {
            return sql_type_for(&Field::new(f.name(), v.as_ref().clone(), true));
        }
        DataType::List(inner) | DataType::LargeList(inner) | DataType::FixedSizeList(inner, _) => {
            if matches!(
                inner.data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
            ) {
                return Err(unsupported());
            }
            let elem = sql_type_for(&inner.as_ref().clone().with_name(f.name()))?;
            format!("{elem}[]")
        }
        DataType::Null => "text".into(),
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_modifiers() {
        assert_eq!(numeric_typmod(((10 << 16) | 2) + 4), Some((10, 2)));
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(
            arrow_scalar(PgScalar::Numeric {
                precision: 50,
                scale: 5
            }),
            DataType::Decimal256(50, 5)
        );
    }

    #[test]
    fn sql_types_for_new_columns() {
        let t = |dt: DataType| sql_type_for(&Field::new("c", dt, true)).unwrap();
        assert_eq!(t(DataType::Int64), "bigint");
        assert_eq!(t(DataType::Decimal128(10, 2)), "numeric(10,2)");
        assert_eq!(
            t(DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("UTC".into())
            )),
            "timestamptz"
        );
        assert_eq!(
            t(DataType::List(Arc::new(Field::new(
                "item",
                DataType::Utf8,
                true
            )))),
            "text[]"
        );
        assert!(
            sql_type_for(&Field::new("c", DataType::Struct(Default::default()), true)).is_err()
        );
        let uuid = arrow_field(
            "id",
            &PgType {
                scalar: PgScalar::Uuid,
                array: false,
                elem_oid: 2950,
            },
        );
        assert!(is_uuid_field(&uuid));
        assert_eq!(sql_type_for(&uuid).unwrap(), "uuid");
    }
}
