//! SQL text for the database connectors: quoted identifiers, strict literals, and the
//! filters DataFusion may push into the query sent to the server (PostgreSQL and MySQL).
//!
//! Only a few filter shapes are pushed (a column compared with a literal, `IS [NOT] NULL`,
//! `IN`, `BETWEEN`, and `AND`/`OR`/`NOT` of those), each rendered here rather than by a generic
//! SQL unparser, so what reaches the server means exactly what DataFusion meant:
//! - string order differs between DataFusion (bytes) and a database collation, so string
//!   ranges are compared in byte order (`COLLATE "C"` in Postgres, `CAST(col AS BINARY)` in
//!   MySQL), and string equality is exact only for a byte-comparing collation (else the server
//!   returns a superset that DataFusion filters again);
//! - floats are pushed only with finite, non-zero literals (`-0 = 0` in SQL, not in Arrow);
//! - no function, cast or pattern is pushed.

use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::scalar::ScalarValue;

/// The SQL flavour of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB (sessions run with `NO_BACKSLASH_ESCAPES` and UTC).
    MySql,
}

/// A quoted identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Dialect {
    /// A quoted identifier.
    pub fn ident(self, s: &str) -> String {
        match self {
            Dialect::Postgres => quote_ident(s),
            Dialect::MySql => format!("`{}`", s.replace('`', "``")),
        }
    }

    /// A literal for a value, or `None` when it has no exact SQL form.
    pub fn literal(self, v: &ScalarValue) -> Option<String> {
        match self {
            Dialect::Postgres => literal(v),
            Dialect::MySql => mysql_literal(v),
        }
    }

    fn text_range(self, column: &str, op: &str, lit: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column} COLLATE \"C\" {op} {lit}"),
            Dialect::MySql => format!("CAST({column} AS BINARY) {op} CAST({lit} AS BINARY)"),
        }
    }
}

/// The kind of a remote column, for the pushdown rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    /// Integers and decimals: compared exactly.
    Exact,
    /// Floating point.
    Float,
    /// Text.
    Text,
    /// Anything else: never filtered remotely.
    Other,
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

/// A MySQL literal (sessions use `NO_BACKSLASH_ESCAPES` and the UTC time zone).
fn mysql_literal(v: &ScalarValue) -> Option<String> {
    use ScalarValue as S;
    let ts = |micros: i64| -> Option<String> {
        let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
        Some(format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")))
    };
    Some(match v {
        S::Boolean(Some(b)) => (*b as u8).to_string(),
        S::Float32(Some(f)) if f.is_finite() && *f != 0.0 => format!("{f:?}"),
        S::Float64(Some(f)) if f.is_finite() && *f != 0.0 => format!("{f:?}"),
        S::Decimal128(Some(_), _, _) | S::Decimal256(Some(_), _, _) => v.to_string(),
        S::Date32(Some(_)) => literal(v)?.trim_end_matches("::date").to_string(),
        S::TimestampSecond(Some(t), _) => ts(t.checked_mul(1_000_000)?)?,
        S::TimestampMillisecond(Some(t), _) => ts(t.checked_mul(1_000)?)?,
        S::TimestampMicrosecond(Some(t), _) => ts(*t)?,
        S::TimestampNanosecond(Some(t), _) if t % 1000 == 0 => ts(t / 1000)?,
        S::Float32(_) | S::Float64(_) | S::TimestampNanosecond(..) => return None,
        _ => literal(v)?,
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
    /// Its kind.
    pub kind: ColKind,
    /// For text: true when `=` compares bytes (a deterministic Postgres collation), so the
    /// server's answer is exact; otherwise (MySQL's case- and pad-insensitive collations) the
    /// server returns a superset that DataFusion filters again.
    pub exact_text_eq: bool,
    /// For text: values are blank-padded and compared ignoring the blanks (Postgres
    /// `char(n)`): only `=` is pushed, as a superset.
    pub padded: bool,
}

/// Decides which filters go to the server, and renders them.
pub struct Pushdown<'a> {
    /// The server's SQL flavour.
    pub dialect: Dialect,
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
        let (Some(sql_op), Some(lit)) = (sql_op(op), self.dialect.literal(v)) else {
            return (Unsupported, None);
        };
        let c = self.dialect.ident(&col.name);
        let text_lit = matches!(
            v,
            ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_)
        );
        match col.kind {
            ColKind::Exact | ColKind::Float if !text_lit => {
                (Exact, Some(format!("{c} {sql_op} {lit}")))
            }
            ColKind::Text if text_lit && op == Operator::Eq => {
                let kind = if col.exact_text_eq { Exact } else { Inexact };
                (kind, Some(format!("{c} = {lit}")))
            }
            // Byte-order comparison, as DataFusion compares strings.
            ColKind::Text if text_lit && !col.padded => {
                (Exact, Some(self.dialect.text_range(&c, sql_op, &lit)))
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
                Some(c) if c.kind != ColKind::Other => {
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
                kind: ColKind::Exact,
                exact_text_eq: false,
                padded: false,
            },
            RemoteColumn {
                name: "s".into(),
                kind: ColKind::Text,
                exact_text_eq: true,
                padded: false,
            },
            RemoteColumn {
                name: "b".into(),
                kind: ColKind::Text,
                exact_text_eq: false,
                padded: false,
            },
        ];
        let p = Pushdown {
            dialect: Dialect::Postgres,
            columns: &cols,
        };
        let (k, s) = p.classify(&col("id").gt(lit(5i64)).and(col("s").eq(lit("x"))));
        assert_eq!(k, Exact);
        assert_eq!(s.unwrap(), "(\"id\" > 5 AND \"s\" = 'x')");
        let (k, s) = p.classify(&col("s").lt(lit("m")));
        assert_eq!(
            (k, s.unwrap()),
            (Exact, "\"s\" COLLATE \"C\" < 'm'".to_string())
        );
        assert_eq!(p.classify(&col("b").eq(lit("x"))).0, Inexact);
        assert_eq!(p.classify(&col("b").lt(lit("x"))).0, Exact);
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

    #[test]
    fn mysql_renders_byte_order_ranges_and_plain_timestamps() {
        let cols = vec![RemoteColumn {
            name: "s".into(),
            kind: ColKind::Text,
            exact_text_eq: false,
            padded: false,
        }];
        let m = Pushdown {
            dialect: Dialect::MySql,
            columns: &cols,
        };
        assert_eq!(
            m.classify(&col("s").gt(lit("a'b"))).1.unwrap(),
            "CAST(`s` AS BINARY) > CAST('a''b' AS BINARY)"
        );
        assert_eq!(
            mysql_literal(&ScalarValue::TimestampMicrosecond(
                Some(1_700_000_000_123_456),
                None
            ))
            .unwrap(),
            "'2023-11-14 22:13:20.123456'"
        );
    }
}
