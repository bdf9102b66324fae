//! SQL text for PostgreSQL: quoted identifiers, strict literals, and the filters DataFusion
//! may push into the query sent to the server.
//!
//! Only a few filter shapes are pushed (a column compared with a literal, `IS [NOT] NULL`,
//! `IN`, `BETWEEN`, and `AND`/`OR`/`NOT` of those), each rendered here rather than by a generic
//! SQL unparser, so what reaches the server means exactly what DataFusion meant:
//! - string order differs between DataFusion (bytes) and a Postgres collation, so string
//!   ranges are compared under `COLLATE "C"` (byte order), and string equality is exact only
//!   for a deterministic collation (else the server returns a superset that DataFusion filters
//!   again);
//! - floats are pushed only with finite, non-zero literals (`-0 = 0` in SQL, not in Arrow);
//! - no function, cast or pattern is pushed.

use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::scalar::ScalarValue;

use super::types::PgScalar;

/// A quoted identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `schema.table` written by a user, as (schema, table); the schema defaults to `public`.
/// Quoted parts (`"My Schema"."T"`) keep their case; unquoted ones are folded to lower case,
/// as Postgres does.
pub fn split_table(name: &str) -> Result<(String, String), String> {
    let parts = split_quoted(name)?;
    match parts.as_slice() {
        [t] => Ok(("public".into(), t.clone())),
        [s, t] => Ok((s.clone(), t.clone())),
        _ => Err(format!(
            "`{name}` is not a table name (write `schema.table` or `table`)"
        )),
    }
}

fn split_quoted(name: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("unclosed quote in `{name}`")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            part = part.trim().to_string();
        }
        if part.is_empty() {
            return Err(format!("`{name}` has an empty name part"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => {}
            Some(c) => return Err(format!("unexpected `{c}` in `{name}`")),
        }
    }
}

/// A string literal (standard-conforming: only `'` is special).
pub fn quote_literal(s: &str) -> Option<String> {
    (!s.contains('\0')).then(|| format!("'{}'", s.replace('\'', "''")))
}

/// A literal for a value, or `None` when it has no exact SQL form here.
pub fn literal(v: &ScalarValue) -> Option<String> {
    use ScalarValue as S;
    Some(match v {
        S::Boolean(Some(b)) => b.to_string(),
        S::Int8(Some(x)) => x.to_string(),
        S::Int16(Some(x)) => x.to_string(),
        S::Int32(Some(x)) => x.to_string(),
        S::Int64(Some(x)) => x.to_string(),
        S::UInt8(Some(x)) => x.to_string(),
        S::UInt16(Some(x)) => x.to_string(),
        S::UInt32(Some(x)) => x.to_string(),
        S::UInt64(Some(x)) => x.to_string(),
        S::Float32(Some(f)) if f.is_finite() && *f != 0.0 => format!("{f:?}::real"),
        S::Float64(Some(f)) if f.is_finite() && *f != 0.0 => format!("{f:?}::double precision"),
        S::Decimal128(Some(_), _, _) | S::Decimal256(Some(_), _, _) => {
            format!("{v}::numeric")
        }
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => quote_literal(s)?,
        S::Date32(Some(d)) => {
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(d.checked_add(719_163)?)?;
            format!("'{date}'::date")
        }
        S::TimestampSecond(Some(t), tz) => ts_literal(t.checked_mul(1_000_000)?, tz.is_some())?,
        S::TimestampMillisecond(Some(t), tz) => ts_literal(t.checked_mul(1_000)?, tz.is_some())?,
        S::TimestampMicrosecond(Some(t), tz) => ts_literal(*t, tz.is_some())?,
        S::TimestampNanosecond(Some(t), tz) => {
            // Postgres keeps microseconds: only a whole number of them has an exact form.
            if t % 1000 != 0 {
                return None;
            }
            ts_literal(t / 1000, tz.is_some())?
        }
        _ => return None,
    })
}

fn ts_literal(micros: i64, with_tz: bool) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let text = t.format("%Y-%m-%d %H:%M:%S%.6f");
    Some(if with_tz {
        format!("'{text}+00'::timestamptz")
    } else {
        format!("'{text}'::timestamp")
    })
}

/// What the pushdown rules know about a remote column.
#[derive(Debug, Clone)]
pub struct RemoteColumn {
    /// The column's name.
    pub name: String,
    /// Its scalar type (arrays are never filtered remotely).
    pub scalar: Option<PgScalar>,
    /// For text: true when its collation compares bytes (deterministic) and it is not
    /// `char(n)` (which ignores trailing blanks).
    pub exact_text_eq: bool,
}

/// Decides which filters go to the server, and renders them.
pub struct Pushdown<'a> {
    /// The remote columns.
    pub columns: &'a [RemoteColumn],
}

use TableProviderFilterPushDown::{Exact, Inexact, Unsupported};

fn weakest(
    a: TableProviderFilterPushDown,
    b: TableProviderFilterPushDown,
) -> TableProviderFilterPushDown {
    match (a, b) {
        (Unsupported, _) | (_, Unsupported) => Unsupported,
        (Inexact, _) | (_, Inexact) => Inexact,
        _ => Exact,
    }
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

fn sql_op(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        _ => return None,
    })
}

fn lit_of(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) if !v.is_null() => Some(v),
        _ => None,
    }
}

impl Pushdown<'_> {
    fn column(&self, e: &Expr) -> Option<&RemoteColumn> {
        match e {
            Expr::Column(c) => self.columns.iter().find(|k| k.name == c.name),
            _ => None,
        }
    }

    /// How a comparison of `col` with literal `v` by `op` can be pushed, and its SQL.
    fn compare(
        &self,
        col: &RemoteColumn,
        op: Operator,
        v: &ScalarValue,
    ) -> (TableProviderFilterPushDown, Option<String>) {
        let (Some(scalar), Some(sql_op), Some(lit)) = (col.scalar, sql_op(op), literal(v)) else {
            return (Unsupported, None);
        };
        let c = quote_ident(&col.name);
        let eq = matches!(op, Operator::Eq | Operator::NotEq);
        match scalar {
            PgScalar::Int2
            | PgScalar::Int4
            | PgScalar::Int8
            | PgScalar::Numeric { .. }
            | PgScalar::Bool
            | PgScalar::Date
            | PgScalar::Timestamp
            | PgScalar::Timestamptz
            | PgScalar::Float4
            | PgScalar::Float8 => (Exact, Some(format!("{c} {sql_op} {lit}"))),
            PgScalar::Text
                if !matches!(
                    v,
                    ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_)
                ) =>
            {
                (Unsupported, None)
            }
            PgScalar::Text if eq && col.exact_text_eq => {
                (Exact, Some(format!("{c} {sql_op} {lit}")))
            }
            PgScalar::Text if op == Operator::Eq => (Inexact, Some(format!("{c} = {lit}"))),
            PgScalar::Text if !eq && col.exact_text_eq => {
                (Exact, Some(format!("{c} COLLATE \"C\" {sql_op} {lit}")))
            }
            _ => (Unsupported, None),
        }
    }

    /// How a filter can be pushed: exactly, as a superset, or not at all; with its SQL.
    pub fn classify(&self, e: &Expr) -> (TableProviderFilterPushDown, Option<String>) {
        match e {
            Expr::BinaryExpr(b) if matches!(b.op, Operator::And | Operator::Or) => {
                let (l, ls) = self.classify(&b.left);
                let (r, rs) = self.classify(&b.right);
                match (ls, rs) {
                    (Some(ls), Some(rs)) => {
                        let op = if b.op == Operator::And { "AND" } else { "OR" };
                        (weakest(l, r), Some(format!("({ls} {op} {rs})")))
                    }
                    _ => (Unsupported, None),
                }
            }
            Expr::BinaryExpr(b) => match (
                self.column(&b.left),
                lit_of(&b.right),
                self.column(&b.right),
                lit_of(&b.left),
            ) {
                (Some(c), Some(v), _, _) => self.compare(c, b.op, v),
                (_, _, Some(c), Some(v)) => self.compare(c, flip(b.op), v),
                _ => (Unsupported, None),
            },
            Expr::IsNull(x) | Expr::IsNotNull(x) => match self.column(x) {
                Some(c) if c.scalar.is_some() => {
                    let not = if matches!(e, Expr::IsNotNull(_)) {
                        " NOT"
                    } else {
                        ""
                    };
                    (
                        Exact,
                        Some(format!("{} IS{not} NULL", quote_ident(&c.name))),
                    )
                }
                _ => (Unsupported, None),
            },
            Expr::Not(x) => match self.classify(x) {
                (Exact, Some(s)) => (Exact, Some(format!("NOT ({s})"))),
                _ => (Unsupported, None),
            },
            Expr::InList(l) if !l.list.is_empty() && l.list.len() <= 1000 => {
                let Some(col) = self.column(&l.expr) else {
                    return (Unsupported, None);
                };
                let mut kind = Exact;
                let mut parts = Vec::new();
                for item in &l.list {
                    let Some(v) = lit_of(item) else {
                        return (Unsupported, None);
                    };
                    let (k, s) = self.compare(col, Operator::Eq, v);
                    let Some(s) = s else {
                        return (Unsupported, None);
                    };
                    kind = weakest(kind, k);
                    parts.push(s);
                }
                if l.negated && kind != Exact {
                    return (Unsupported, None);
                }
                let any = format!("({})", parts.join(" OR "));
                (
                    kind,
                    Some(if l.negated { format!("NOT {any}") } else { any }),
                )
            }
            Expr::Between(b) if !b.negated => {
                let (Some(c), Some(lo), Some(hi)) =
                    (self.column(&b.expr), lit_of(&b.low), lit_of(&b.high))
                else {
                    return (Unsupported, None);
                };
                let (k1, s1) = self.compare(c, Operator::GtEq, lo);
                let (k2, s2) = self.compare(c, Operator::LtEq, hi);
                match (s1, s2) {
                    (Some(a), Some(b)) => (weakest(k1, k2), Some(format!("({a} AND {b})"))),
                    _ => (Unsupported, None),
                }
            }
            _ => (Unsupported, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn table_names_and_literals() {
        assert_eq!(
            split_table("analytics.Daily").unwrap(),
            ("analytics".into(), "daily".into())
        );
        assert_eq!(
            split_table("\"My S\".\"T\"\"x\"").unwrap(),
            ("My S".into(), "T\"x".into())
        );
        assert_eq!(split_table("t").unwrap(), ("public".into(), "t".into()));
        assert!(split_table("a.b.c").is_err());
        assert_eq!(
            literal(&ScalarValue::Utf8(Some("it's".into()))).unwrap(),
            "'it''s'"
        );
        assert_eq!(literal(&ScalarValue::Utf8(Some("a\0".into()))), None);
        assert_eq!(
            literal(&ScalarValue::TimestampMicrosecond(
                Some(1_700_000_000_123_456),
                None
            ))
            .unwrap(),
            "'2023-11-14 22:13:20.123456'::timestamp"
        );
        assert_eq!(
            literal(&ScalarValue::TimestampNanosecond(Some(1), None)),
            None
        );
        assert_eq!(
            literal(&ScalarValue::Date32(Some(0))).unwrap(),
            "'1970-01-01'::date"
        );
        assert_eq!(literal(&ScalarValue::Float64(Some(0.0))), None);
    }

    #[test]
    fn only_safe_filters_are_pushed() {
        let cols = vec![
            RemoteColumn {
                name: "id".into(),
                scalar: Some(PgScalar::Int8),
                exact_text_eq: false,
            },
            RemoteColumn {
                name: "s".into(),
                scalar: Some(PgScalar::Text),
                exact_text_eq: true,
            },
            RemoteColumn {
                name: "b".into(),
                scalar: Some(PgScalar::Text),
                exact_text_eq: false,
            },
        ];
        let p = Pushdown { columns: &cols };
        let (k, s) = p.classify(&col("id").gt(lit(5i64)).and(col("s").eq(lit("x"))));
        assert_eq!(k, Exact);
        assert_eq!(s.unwrap(), "(\"id\" > 5 AND \"s\" = 'x')");
        let (k, s) = p.classify(&col("s").lt(lit("m")));
        assert_eq!(
            (k, s.unwrap()),
            (Exact, "\"s\" COLLATE \"C\" < 'm'".to_string())
        );
        assert_eq!(p.classify(&col("b").eq(lit("x"))).0, Inexact);
        assert_eq!(p.classify(&col("b").lt(lit("x"))).0, Unsupported);
        assert_eq!(
            p.classify(&lit(3i64).lt(col("id"))).1.unwrap(),
            "\"id\" > 3"
        );
        assert_eq!(
            p.classify(&col("id").in_list(vec![lit(1i64), lit(2i64)], false))
                .1
                .unwrap(),
            "(\"id\" = 1 OR \"id\" = 2)"
        );
        assert_eq!(
            p.classify(&datafusion::logical_expr::not(col("b").eq(lit("x"))))
                .0,
            Unsupported
        );
        assert_eq!(
            p.classify(&col("id").is_null()).1.unwrap(),
            "\"id\" IS NULL"
        );
    }
}
