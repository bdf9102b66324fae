//! Finding tests: pipeline files below a folder, and `NAME.test.yaml` beside a pipeline.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::file::MAX_LISTED_ENTRIES;
use crate::spec::TestSpec;
use crate::yaml::{self, Kind};

/// Folders never searched for pipelines: state, build output, version control, virtualenvs.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "__pycache__"];

/// True for a file name that holds tests only (`x.test.yaml`).
fn is_test_file(name: &str) -> bool {
    name.ends_with(".test.yaml") || name.ends_with(".test.yml")
}

/// The `NAME.test.yaml` (or `.test.yml`) beside a pipeline file, if there is one.
pub fn test_file_of(pipeline: &Path) -> Option<PathBuf> {
    let stem = pipeline.file_stem()?.to_string_lossy().into_owned();
    ["test.yaml", "test.yml"]
        .iter()
        .map(|ext| pipeline.with_file_name(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// Every pipeline file below `dir`, sorted: a `.yaml`/`.yml` file (not `*.test.yaml`) whose
/// top level is a mapping with `sources`, `transforms` or `sinks`. Hidden folders and build
/// output are skipped.
///
/// Gives up past [`MAX_LISTED_ENTRIES`] files and folders (returning the count), as source
/// listing does, so `etl test /` answers at once instead of walking the whole disk.
pub fn find_pipelines(dir: &Path) -> Result<Vec<PathBuf>, usize> {
    find_within(dir, MAX_LISTED_ENTRIES)
}

fn find_within(dir: &Path, limit: usize) -> Result<Vec<PathBuf>, usize> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > limit {
                return Err(limit);
            }
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
                && !is_test_file(&name)
                && looks_like_pipeline(&path)
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn looks_like_pipeline(path: &Path) -> bool {
    // Through the loader's reader: a FIFO or a huge file named `*.yaml` is passed over,
    // not waited on or read whole.
    let Ok(text) = crate::load::read_text(path) else {
        return false;
    };
    let Ok(root) = yaml::parse(&text) else {
        return false;
    };
    ["sources", "transforms", "sinks"]
        .iter()
        .any(|k| root.get(k).is_some())
}

/// Reads a `NAME.test.yaml`: a `tests:` map alone. Every problem comes back with its place.
pub fn load_test_file(file: &Path) -> Result<IndexMap<String, TestSpec>, Diagnostics> {
    let one = |d: Diagnostic| {
        let mut ds = Diagnostics::default();
        ds.push(d.in_file(file));
        ds
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| one(Diagnostic::error(format!("cannot read the test file: {e}"))))?;
    let root = yaml::parse(&text).map_err(|e| {
        one(Diagnostic::error(format!("invalid YAML: {}", e.message)).at(Some(e.pos)))
    })?;
    let Some(entries) = root.as_map() else {
        return Err(one(Diagnostic::error(format!(
            "a test file is a mapping with one key, `tests`, found {}",
            root.type_name()
        ))
        .at(Some(root.pos))));
    };
    let mut diags = Diagnostics::default();
    let mut out = IndexMap::new();
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        if key != "tests" {
            diags.push(
                Diagnostic::error(format!("unknown key `{key}`"))
                    .in_file(file)
                    .at_path(key)
                    .at(Some(k.pos))
                    .with_help(
                        "a test file holds only `tests:`; the pipeline stays in its own file",
                    ),
            );
            continue;
        }
        let Kind::Map(tests) = &v.kind else {
            if !v.is_null() {
                diags.push(
                    Diagnostic::error(format!(
                        "`tests` is a mapping of test names to tests, found {}",
                        v.type_name()
                    ))
                    .in_file(file)
                    .at_path("tests")
                    .at(Some(v.pos)),
                );
            }
            continue;
        };
        for (name_node, t) in tests {
            let name = name_node.as_str().unwrap_or_default().to_string();
            let path = yaml::join("tests", &name);
            match yaml::from_node::<TestSpec>(t, &path) {
                Ok(spec) => {
                    out.insert(name, spec);
                }
                Err(e) => {
                    let mut d = Diagnostic::error(e.message.clone())
                        .in_file(file)
                        .at(e.pos)
                        .at_path(e.path.clone().unwrap_or(path));
                    if let Some((field, expected)) = &e.unknown_field {
                        d = d.suggest(field, expected.iter().map(String::as_str));
                    }
                    diags.push(d);
                }
            }
        }
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_found_below_a_folder_within_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/.hidden")).unwrap();
        std::fs::write(dir.path().join("a/p.yaml"), "sinks: {}\n").unwrap();
        std::fs::write(dir.path().join("a/p.test.yaml"), "tests: {}\n").unwrap();
        std::fs::write(dir.path().join("a/.hidden/q.yaml"), "sinks: {}\n").unwrap();
        std::fs::write(dir.path().join("notes.yaml"), "title: x\n").unwrap();
        let found = find_within(dir.path(), 100).unwrap();
        assert_eq!(found, [dir.path().join("a/p.yaml")]);
        assert_eq!(find_within(dir.path(), 3), Err(3));
    }
}
