//! Static validation: from a loaded spec to a [`Pipeline`], or every problem at once.
//!
//! Checks names (unique across sources, transforms and sinks), references (SQL tables,
//! `from:`, check targets, connections), cycles, paths, schema types and sink settings. SQL is
//! parsed here to find dependencies; planning it against real schemas is `plan`'s job.

mod checks;
mod components;
mod dbt;
mod depth;
pub mod options;
mod partition;
mod paths;
mod sql;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostics, Pos};
use crate::load::Loaded;
use crate::model::{Pipeline, Sink, Source};
use crate::yaml::{self, Kind};

pub use partition::partition_problems;
pub use paths::canonical;
pub use sql::{parse_sql, sql_error_pos, table_refs};

/// Validates a loaded pipeline.
pub fn validate(loaded: &Loaded) -> Result<Pipeline, Diagnostics> {
    let mut diags = Diagnostics::default();
    let spec = &loaded.spec;
    check_unique_names(loaded, &mut diags);
    options::engine(loaded, &mut diags);
    let mut schema_checks = Vec::new();
    let sources: IndexMap<String, Source> = spec
        .sources
        .iter()
        .filter_map(|(name, s)| {
            let (source, checks) = components::source(loaded, name, s, &mut diags)?;
            schema_checks.extend(checks);
            Some((name.clone(), source))
        })
        .collect();
    let declared: Vec<String> = loaded
        .declared("sources")
        .into_iter()
        .chain(loaded.declared("transforms"))
        .collect();
    let relations: Vec<&str> = declared.iter().map(String::as_str).collect();
    let mut transforms = IndexMap::new();
    for (name, t) in &spec.transforms {
        if let Some(tr) = sql::transform(loaded, name, t, &relations, &mut diags) {
            transforms.insert(name.clone(), tr);
        }
    }
    let transforms = sql::order_transforms(loaded, transforms, &mut diags);
    let mut checks = checks::checks(loaded, &relations, &mut diags);
    // A JSON Schema `enum` (in a source's `schema_file`) is an accepted-values check.
    checks::add_derived(&mut checks, schema_checks);
    let sinks: IndexMap<String, Sink> = spec
        .sinks
        .iter()
        .filter_map(|(name, s)| {
            components::sink(loaded, name, s, &relations, &mut diags).map(|s| (name.clone(), s))
        })
        .collect();
    for (name, c) in &spec.connections {
        if !["postgres", "mysql", "s3", "gcs", "azure", "http"].contains(&c.kind.as_str()) {
            diags.push(loaded.error_at(
                &format!("connections.{name}.type"),
                format!("unknown connection type `{}`", c.kind),
            ));
        }
    }
    let state_dir = std::env::var_os("ETL_STATE_DIR")
        .map(|d| {
            resolve_local(
                &std::env::current_dir().unwrap_or_default(),
                &d.to_string_lossy(),
            )
        })
        .or_else(|| {
            spec.state
                .as_ref()
                .and_then(|s| s.dir.as_deref())
                .map(|d| resolve_local(&loaded.base_dir, d))
        })
        .unwrap_or_else(|| resolve_local(&loaded.base_dir, ".etl"));
    paths::check(
        loaded,
        &sources,
        &transforms,
        &sinks,
        &state_dir,
        &mut diags,
    );
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Pipeline {
        name: loaded.name.clone(),
        description: spec.description.clone(),
        file: loaded.file.clone(),
        base_dir: loaded.base_dir.clone(),
        state_dir,
        state_url: spec.state.as_ref().and_then(|s| s.url.clone()),
        run_id: loaded.run_id.clone(),
        vars: loaded.vars.clone(),
        connections: spec.connections.clone(),
        sources,
        transforms,
        checks,
        sinks,
        tests: spec.tests.clone(),
        engine: spec.engine.clone().unwrap_or_default(),
        places: places(&loaded.root),
        bad_rows: Default::default(),
    })
}

fn check_unique_names(loaded: &Loaded, diags: &mut Diagnostics) {
    let spec = &loaded.spec;
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let all = spec
        .sources
        .keys()
        .map(|k| ("sources", k))
        .chain(spec.transforms.keys().map(|k| ("transforms", k)))
        .chain(spec.sinks.keys().map(|k| ("sinks", k)));
    for (section, name) in all {
        if let Some(first) = seen.insert(name, section) {
            diags.push(
                loaded
                    .error_at_key(
                        &format!("{section}.{name}"),
                        format!(
                            "the name `{name}` is used twice (in `{first}` and in `{section}`)"
                        ),
                    )
                    .with_help(
                        "sources, transforms and sinks share one namespace; rename one of them",
                    ),
            );
        }
    }
}

/// Makes a local path absolute against the pipeline's folder.
pub fn resolve_local(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// True for object-store and HTTP URLs.
pub fn is_url(p: &str) -> bool {
    [
        "s3://",
        "s3a://",
        "gs://",
        "gcs://",
        "az://",
        "abfs://",
        "abfss://",
        "azure://",
        "http://",
        "https://",
        "file://",
        "memory://",
    ]
    .iter()
    .any(|s| p.starts_with(s))
}

/// True when a path has glob wildcards.
pub fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Every YAML path of the tree with its position (entries point at their key).
fn places(root: &yaml::Node) -> HashMap<String, Pos> {
    fn walk(node: &yaml::Node, path: &str, out: &mut HashMap<String, Pos>) {
        match &node.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let p = yaml::join(path, k.as_str().unwrap_or_default());
                    out.insert(
                        p.clone(),
                        if matches!(v.kind, Kind::Map(_)) {
                            k.pos
                        } else {
                            v.pos
                        },
                    );
                    walk(v, &p, out);
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    out.insert(p.clone(), item.pos);
                    walk(item, &p, out);
                }
            }
            Kind::Scalar(..) => {}
        }
    }
    let mut out = HashMap::new();
    walk(root, "", &mut out);
    out
}
