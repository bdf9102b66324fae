//! Files as they arrive: Hive-style `col=value/` folders read back as columns, a column
//! naming each row's file, and globs with wildcards in folder names.
//!
//! A source whose files need any of these is split into parts (the files sharing one set of
//! folder values, or one file each for a file column). Each part is read like a source of
//! its own, with one schema for all (declared, or inferred over every file), and gets its
//! values as literal columns; the parts are one `UNION ALL`. A filter on a folder column
//! folds to a constant per part, so the optimiser drops the parts it rules out before any
//! file is opened. Folder values are typed `bigint` when every value is an integer, `date`
//! when every value is `YYYY-MM-DD`, else `string`, unless `schema:` declares the column.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, Union, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::scalar::ScalarValue;

use super::find::{Listed, is_folder_glob, list_located, percent_decode};
use crate::model::Source;
use crate::source::SourceError;

/// The folder name Hive and Spark write for a NULL partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// What a source asks for beyond its files' own columns.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// A column holding each row's file.
    pub file_column: Option<&'a str>,
    /// Read `col=value/` folders as columns.
    pub hive: bool,
}

/// One part of a split source: its files and the extra column values of its rows.
#[derive(Debug, Clone)]
pub struct Part {
    /// The files, as source locations.
    pub locations: Vec<String>,
    /// One value per extra column.
    pub values: Vec<ScalarValue>,
}

/// A source read in parts.
#[derive(Debug, Clone)]
pub struct Split {
    /// Every file, as source locations (to infer one schema over all of them).
    pub all: Vec<String>,
    /// The parts.
    pub parts: Vec<Part>,
    /// The extra columns, after the files' own: folder columns, then the file column.
    pub columns: Vec<Field>,
}

/// Whether the source must be read in parts, and which. `None`: read it as one table.
pub async fn split(
    ctx: &SessionContext,
    src: &Source,
    extension: &str,
    layout: Layout<'_>,
    base_dir: &Path,
) -> Result<Option<Split>, SourceError> {
    let folder_glob = src.locations.iter().any(|l| is_folder_glob(l));
    let may_have_folders = layout.hive
        && src
            .locations
            .iter()
            .any(|l| l.ends_with('/') || crate::validate::has_glob(l) || Path::new(l).is_dir());
    if !folder_glob && layout.file_column.is_none() && !may_have_folders {
        return Ok(None);
    }
    let files = list_located(ctx, src, extension).await?;
    let keys = if layout.hive {
        hive_keys(src, &files)?
    } else {
        Vec::new()
    };
    if !folder_glob && layout.file_column.is_none() && keys.is_empty() {
        return Ok(None);
    }
    let raw: Vec<Vec<Option<String>>> = files
        .iter()
        .map(|f| {
            hive_pairs(&f.relative)
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        })
        .collect();
    let mut columns = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let declared = src
            .schema
            .as_ref()
            .and_then(|s| s.field_with_name(key).ok().map(|f| f.data_type().clone()));
        let ty = declared.unwrap_or_else(|| infer_type(raw.iter().map(|r| r[i].as_deref())));
        columns.push(Field::new(key, ty, true));
    }
    let hive_columns = columns.len();
    if let Some(name) = layout.file_column {
        columns.push(Field::new(name, DataType::Utf8, false));
    }
    let mut groups: BTreeMap<Vec<Option<String>>, (usize, Vec<String>)> = BTreeMap::new();
    let mut parts = Vec::new();
    for (i, (f, values)) in files.iter().zip(&raw).enumerate() {
        if layout.file_column.is_some() {
            let mut vals = typed_values(src, f, values, &columns[..hive_columns])?;
            vals.push(ScalarValue::Utf8(Some(shown_path(&f.location, base_dir))));
            parts.push(Part {
                locations: vec![f.location.clone()],
                values: vals,
            });
        } else {
            let group = groups.entry(values.clone()).or_insert((i, Vec::new()));
            group.1.push(f.location.clone());
        }
    }
    for (values, (first, locations)) in groups {
        parts.push(Part {
            values: typed_values(src, &files[first], &values, &columns)?,
            locations,
        });
    }
    Ok(Some(Split {
        all: files.into_iter().map(|f| f.location).collect(),
        parts,
        columns,
    }))
}

/// The `col=value` folders of a file's path below the source's folder.
fn hive_pairs(relative: &str) -> Vec<(String, Option<String>)> {
    let segments: Vec<&str> = relative.split('/').collect();
    segments[..segments.len().saturating_sub(1)]
        .iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| {
            let v = percent_decode(v);
            (percent_decode(k), (v != HIVE_NULL).then_some(v))
        })
        .collect()
}

/// The folder columns every file shares; files in folders of different shapes are an error.
fn hive_keys(src: &Source, files: &[Listed]) -> Result<Vec<String>, SourceError> {
    let keys_of = |f: &Listed| -> Vec<String> {
        hive_pairs(&f.relative)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    let Some(first) = files.first() else {
        return Ok(Vec::new());
    };
    let keys = keys_of(first);
    if let Some(other) = files.iter().find(|f| keys_of(f) != keys) {
        let shape = |k: &[String]| {
            if k.is_empty() {
                "no `col=value/` folders".to_string()
            } else {
                format!(
                    "folders {}",
                    k.iter()
                        .map(|k| format!("`{k}=`"))
                        .collect::<Vec<_>>()
                        .join("/")
                )
            }
        };
        return Err(SourceError::Read {
            name: src.name.clone(),
            file: other.location.clone(),
            reason: format!(
                "this file lies in {}, but {} lies in {}; Hive-style folders must be the same for every file (set `options: {{ hive_partitioning: false }}` to read the files without folder columns)",
                shape(&keys_of(other)),
                first.location,
                shape(&keys)
            ),
        });
    }
    Ok(keys)
}

fn infer_type<'a>(values: impl Iterator<Item = Option<&'a str>> + Clone) -> DataType {
    let present = values.flatten();
    if present
        .clone()
        .all(|v| !v.is_empty() && v.parse::<i64>().is_ok())
    {
        DataType::Int64
    } else if present
        .clone()
        .all(|v| v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok())
    {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

/// The folder values of a file as typed scalars.
fn typed_values(
    src: &Source,
    file: &Listed,
    values: &[Option<String>],
    columns: &[Field],
) -> Result<Vec<ScalarValue>, SourceError> {
    values
        .iter()
        .zip(columns)
        .map(|(v, f)| {
            ScalarValue::Utf8(v.clone())
                .cast_to(f.data_type())
                .map_err(|_| SourceError::Read {
                    name: src.name.clone(),
                    file: file.location.clone(),
                    reason: format!(
                        "folder `{}={}`: `{}` is not a valid {}",
                        f.name(),
                        v.as_deref().unwrap_or_default(),
                        v.as_deref().unwrap_or_default(),
                        crate::types::sql_name(f.data_type())
                    ),
                })
        })
        .collect()
}

/// A file as the pipeline names it: below the pipeline's folder, relative to it.
fn shown_path(location: &str, base_dir: &Path) -> String {
    if crate::validate::is_url(location) {
        return location.to_string();
    }
    let base = crate::validate::resolve_local(base_dir, "");
    Path::new(location)
        .strip_prefix(&base)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| location.to_string())
}

impl Split {
    /// The schema each part is read with: the declared one without the added columns.
    pub fn file_schema(&self, declared: &SchemaRef) -> SchemaRef {
        let fields: Vec<Field> = declared
            .fields()
            .iter()
            .filter(|f| !self.columns.iter().any(|c| c.name() == f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// A part as a source of its own, read with `schema`.
    pub fn part_source(
        &self,
        src: &Source,
        locations: &[String],
        schema: Option<SchemaRef>,
    ) -> Source {
        Source {
            locations: locations.to_vec(),
            schema,
            ..src.clone()
        }
    }

    /// The parts' tables (in the order of `self.parts`) as one table with the added columns.
    /// A folder column the files hold themselves is left to the files.
    pub fn union(
        &self,
        ctx: &SessionContext,
        src: &Source,
        file_column: Option<&str>,
        tables: Vec<Arc<dyn TableProvider>>,
    ) -> Result<Arc<dyn TableProvider>, SourceError> {
        let engine = |error| SourceError::Engine {
            name: src.name.clone(),
            error,
        };
        if self.columns.is_empty() && tables.len() == 1 {
            return Ok(tables.into_iter().next().expect("one table"));
        }
        let mut plans = Vec::with_capacity(tables.len());
        for (table, part) in tables.into_iter().zip(&self.parts) {
            let schema = table.schema();
            if let Some(c) = file_column
                && schema.field_with_name(c).is_ok()
            {
                return Err(SourceError::Read {
                    name: src.name.clone(),
                    file: part.locations[0].clone(),
                    reason: format!(
                        "`file_column: {c}` names a column the file already has; pick another name"
                    ),
                });
            }
            let mut exprs: Vec<Expr> = schema
                .fields()
                .iter()
                .map(|f| Expr::Column(Column::new_unqualified(f.name())))
                .collect();
            for (field, value) in self.columns.iter().zip(&part.values) {
                if schema.field_with_name(field.name()).is_err() {
                    exprs.push(lit(value.clone()).alias(field.name()));
                }
            }
            let df = ctx
                .read_table(table)
                .and_then(|d| d.select(exprs))
                .map_err(engine)?;
            plans.push(Arc::new(df.into_unoptimized_plan()));
        }
        let plan = match plans.len() {
            1 => Arc::unwrap_or_clone(plans.remove(0)),
            _ => LogicalPlan::Union(Union::try_new(plans).map_err(engine)?),
        };
        let df = DataFrame::new(ctx.state(), plan);
        Ok(df.into_view())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_values_are_decoded_and_typed() {
        assert_eq!(
            hive_pairs("year=2024/day=2024-01-02/city=New%20York/x.csv"),
            vec![
                ("year".to_string(), Some("2024".to_string())),
                ("day".to_string(), Some("2024-01-02".to_string())),
                ("city".to_string(), Some("New York".to_string())),
            ]
        );
        assert_eq!(
            hive_pairs("a/b=__HIVE_DEFAULT_PARTITION__/x.csv"),
            vec![("b".into(), None)]
        );
        assert!(
            hive_pairs("x=1.csv").is_empty(),
            "a file name is not a folder"
        );
        let ty = |v: &[Option<&str>]| infer_type(v.iter().copied());
        assert_eq!(ty(&[Some("2024"), None, Some("-1")]), DataType::Int64);
        assert_eq!(
            ty(&[Some("2024-01-02"), Some("2023-12-31")]),
            DataType::Date32
        );
        assert_eq!(ty(&[Some("2024-01-02"), Some("7")]), DataType::Utf8);
        assert_eq!(ty(&[Some("DE")]), DataType::Utf8);
    }
}
