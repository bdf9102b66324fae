//! Loading a pipeline file: read, parse with positions, render templates, deserialize.
//!
//! Vars are resolved first (defaults, then `--vars-file`, then `--var`), in dependency order
//! so vars can refer to vars. Then every string scalar of the file is rendered in place, and
//! each section entry is deserialized on its own, so one bad entry does not hide the others:
//! all problems come back as diagnostics with file, YAML path and line:col.

mod native;
mod vars;

pub use vars::var_value;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use indexmap::IndexMap;

use crate::connector::{PLANNED_SINKS, PLANNED_SOURCES, SINKS, SOURCES, sink_entry, source_entry};
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::spec::{PipelineSpec, SinkSpec, SourceSpec};
use crate::template::{EnvMode, Globals, Relations, TemplateError, Templater, Trace};
use crate::yaml::{self, DeError, FileText, Kind, Node, Style, TextPlaces, from_node, join};

/// The keys a pipeline file may have at the top.
pub const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "vars",
    "connections",
    "sources",
    "transforms",
    "checks",
    "sinks",
    "tests",
    "state",
    "engine",
];

/// The largest file `etl` reads as a pipeline, vars file or SQL file.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// A text file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A folder, a device or a pipe: reading it could block or never end.
    #[error("not a regular file")]
    NotAFile,
    /// Past [`MAX_FILE_BYTES`].
    #[error("larger than {} MiB", MAX_FILE_BYTES >> 20)]
    TooLarge,
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
}

/// Reads a text file the pipeline names, refusing special files (`/dev/zero`, a FIFO) and
/// files larger than [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    // Opening a FIFO for reading waits for a writer; without blocking it opens at once and
    // is refused below as not a file. (On a regular file the flag changes nothing.)
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NONBLOCK);
    let file = open.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(ReadError::NotAFile);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

/// What the caller supplies besides the file.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `--var k=v` overrides, in order.
    pub vars: Vec<(String, String)>,
    /// `--vars-file`.
    pub vars_file: Option<PathBuf>,
    /// Extra overrides applied last (a test's `vars:`), as YAML values.
    pub extra_vars: IndexMap<String, serde_json::Value>,
    /// The logical date.
    pub ds: NaiveDate,
    /// This run's id.
    pub run_id: String,
    /// How unset `env()` variables are treated.
    pub env_mode: EnvMode,
}

/// A loaded pipeline file.
pub struct Loaded {
    /// The file.
    pub file: PathBuf,
    /// The folder relative paths are resolved against.
    pub base_dir: PathBuf,
    /// The pipeline's name.
    pub name: String,
    /// The typed, rendered spec.
    pub spec: PipelineSpec,
    /// The rendered node tree, for positions.
    pub root: Node,
    /// The tree's places by YAML path.
    pub index: yaml::Index,
    /// The resolved vars (values from `env()` are secrets: redact before printing).
    pub vars: BTreeMap<String, serde_json::Value>,
    /// This run's id.
    pub run_id: String,
    /// The renderer, for `sql_file` contents.
    pub templater: Templater,
    /// The file's text, to map positions inside values back to it.
    pub text: FileText,
    /// For each value that was a template: where each part of its rendered text came from.
    pub traces: HashMap<String, Arc<Trace>>,
    /// The YAML paths of values whose template failed (their error is reported; they are
    /// left as written, so nothing else should read them).
    pub failed_templates: HashSet<String>,
    /// Problems met while loading: warnings, and with [`load_lenient`] errors too.
    pub warnings: Diagnostics,
}

impl Loaded {
    /// Every name declared under `section` in the file, including entries that did not
    /// deserialize (so references to them are not reported a second time).
    pub fn declared(&self, section: &str) -> Vec<String> {
        section_names(&self.root, section)
    }

    /// True when the value at a YAML path is a template that failed to render.
    pub fn template_failed(&self, path: &str) -> bool {
        self.failed_templates.contains(path)
    }

    /// The place of a YAML path in the file.
    pub fn pos(&self, path: &str) -> Option<Pos> {
        self.index.get(path).map(|p| p.pos)
    }

    /// A diagnostic in this file at a YAML path.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message)
            .in_file(&self.file)
            .at_path(path)
            .at(self.pos(path))
    }

    /// A diagnostic pointing at the key of a YAML path (for "this entry" problems).
    pub fn error_at_key(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let pos = self.index.get(path).and_then(|p| p.key_pos.or(Some(p.pos)));
        Diagnostic::error(message)
            .in_file(&self.file)
            .at_path(path)
            .at(pos)
    }
}

/// Loads a pipeline file. On failure, returns every diagnostic found.
pub fn load(file: &Path, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let loaded = load_lenient(file, opts)?;
    if loaded.warnings.has_errors() {
        return Err(loaded.warnings);
    }
    Ok(loaded)
}

/// Loads a pipeline file as far as it can: fails only when the file cannot be read or is
/// not a YAML mapping. Entries that do not deserialize are left out of the spec and their
/// errors are in `warnings`, so later stages can still report their own problems.
pub fn load_lenient(file: &Path, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::default();
    let (text, root) = read_root(file)?;
    let base_dir = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let name = root
        .get("name")
        .and_then(Node::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pipeline".into())
        });
    let globals = Globals {
        ds: opts.ds,
        run_id: opts.run_id.clone(),
        pipeline_name: name.clone(),
    };
    let mut templater = Templater::new(&globals, opts.env_mode);
    templater.set_relations(Relations {
        sources: section_names(&root, "sources"),
        transforms: section_names(&root, "transforms"),
    });
    let cx = Cx {
        file,
        exhausted_reported: Cell::new(false),
        text,
        traces: RefCell::default(),
        failed: RefCell::default(),
    };

    let var_nodes = vars::collect_var_nodes(&root, opts, &cx, &mut diags);
    let vars = vars::resolve_vars(&var_nodes, &mut templater, &cx, &mut diags);

    let rendered = render_root(&root, &templater, &cx, &mut diags);
    for name in templater.take_unset_env() {
        diags.push(
            Diagnostic::warning(format!(
                "environment variable `{name}` is not set and has no default; a placeholder was used"
            ))
            .in_file(file)
            .with_help("set it before `etl run`, or give `env()` a default"),
        );
    }
    let spec = deserialize(&rendered, &cx, &mut diags);
    let warnings = diags;
    Ok(Loaded {
        file: file.to_path_buf(),
        base_dir,
        name: spec.name.clone().unwrap_or(name),
        spec,
        index: yaml::Index::new(&rendered),
        root: rendered,
        vars,
        run_id: opts.run_id.clone(),
        templater,
        traces: cx.traces.take(),
        failed_templates: cx.failed.take(),
        text: cx.text,
        warnings,
    })
}

/// The names of a section's entries, as written (before rendering).
fn section_names(root: &Node, section: &str) -> Vec<String> {
    root.get(section)
        .and_then(Node::as_map)
        .map(|m| {
            m.iter()
                .filter_map(|(k, _)| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads and parses a pipeline file into its text and node tree, which must be a mapping.
fn read_root(file: &Path) -> Result<(FileText, Node), Diagnostics> {
    let one = |d: Diagnostic| {
        let mut ds = Diagnostics::default();
        ds.push(d.in_file(file));
        ds
    };
    let text = read_text(file).map_err(|e| {
        one(Diagnostic::error(format!(
            "cannot read the pipeline file: {e}"
        )))
    })?;
    let root = yaml::parse(&text).map_err(|e| {
        one(Diagnostic::error(format!("invalid YAML: {}", e.message)).at(Some(e.pos)))
    })?;
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(one(
            Diagnostic::error(format!(
                "a pipeline file is a mapping of keys (name, sources, transforms, sinks, ...), found {}",
                root.type_name()
            ))
            .at(Some(root.pos)),
        ));
    }
    Ok((FileText::new(&text), root))
}

pub(super) struct Cx<'a> {
    file: &'a Path,
    /// Whether the templates' used-up budget was reported (it is, once).
    exhausted_reported: Cell<bool>,
    /// The file's text.
    text: FileText,
    /// Traces of the values rendered so far, by YAML path.
    traces: RefCell<HashMap<String, Arc<Trace>>>,
    /// YAML paths whose template failed.
    failed: RefCell<HashSet<String>>,
}

impl Cx<'_> {
    fn de_error(&self, e: DeError) -> Diagnostic {
        let mut d = Diagnostic::error(e.message.clone())
            .in_file(self.file)
            .at(e.pos)
            .at_path(e.path.clone().unwrap_or_default());
        if let Some((field, expected)) = &e.unknown_field {
            let candidates = expected.iter().map(String::as_str);
            if let Some(help) = did_you_mean(field, candidates) {
                d.message = format!("unknown key `{field}`");
                d = d.with_help(help);
            }
        }
        d
    }

    /// A template error placed at its value; `None` for a repeat of "the budget is used up".
    fn template_error(&self, e: TemplateError, node: &Node, path: &str) -> Option<Diagnostic> {
        self.failed.borrow_mut().insert(path.to_string());
        if e.exhausted && self.exhausted_reported.replace(true) {
            return None;
        }
        // The error's place in the template's text, through the scalar's style.
        let pos = match (e.offset, &node.kind) {
            (Some(offset), Kind::Scalar(raw, style)) => {
                TextPlaces::of_scalar(&self.text, node.pos, *style, raw).pos_of(offset)
            }
            _ => node.text_pos,
        };
        Some(
            e.into_diagnostic()
                .in_file(self.file)
                .at(Some(pos).filter(|p| p.line > 0))
                .at_path(path),
        )
    }
}

/// Renders every string scalar below the root, except `vars` (already resolved) and `tests`
/// (rendered per test, with the test's vars).
fn render_root(root: &Node, t: &Templater, cx: &Cx, diags: &mut Diagnostics) -> Node {
    let mut out = root.clone();
    if let Kind::Map(entries) = &mut out.kind {
        for (k, v) in entries.iter_mut() {
            let key = k.as_str().unwrap_or_default().to_string();
            if key != "vars" && key != "tests" {
                render_node(v, t, cx, &key, diags);
            }
        }
    }
    out
}

fn render_node(node: &mut Node, t: &Templater, cx: &Cx, path: &str, diags: &mut Diagnostics) {
    match &mut node.kind {
        Kind::Scalar(..) => render_scalar(node, t, cx, path, diags),
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                render_node(item, t, cx, &format!("{path}[{i}]"), diags);
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let key = k.as_str().unwrap_or_default().to_string();
                render_node(v, t, cx, &join(path, &key), diags);
            }
        }
    }
}

/// Renders one string scalar in place. A value that is one whole expression keeps the
/// expression's type (a list, a number, ...); any other template renders to a string.
fn render_scalar(node: &mut Node, t: &Templater, cx: &Cx, path: &str, diags: &mut Diagnostics) {
    let Kind::Scalar(s, style) = &node.kind else {
        return;
    };
    // Per-item templates of HTTP sources are rendered per item, by validation.
    if !Templater::is_template(s) || crate::source::http::defers_rendering(path, s, t) {
        return;
    }
    let style = *style;
    let place = |kind| Node {
        kind,
        pos: node.pos,
        text_pos: node.text_pos,
        indent: node.indent,
    };
    let rendered = if matches!(style, Style::Plain | Style::Quoted)
        && Templater::lone_expression(s).is_some()
    {
        t.render_value(s).map(|v| native::value_node(&v, node))
    } else {
        t.render_traced(s).map(|(r, trace)| {
            if let Some(trace) = trace {
                cx.traces
                    .borrow_mut()
                    .insert(path.to_string(), Arc::new(trace));
            }
            place(Kind::Scalar(r, style))
        })
    };
    match rendered {
        Ok(r) => *node = r,
        Err(e) => {
            // The template's own text places the error (through the scalar's style).
            if let Some(d) = cx.template_error(e, &place(Kind::Scalar(s.clone(), style)), path) {
                diags.push(d);
            }
        }
    }
}

/// Deserializes the rendered tree section by section, entry by entry.
fn deserialize(root: &Node, cx: &Cx, diags: &mut Diagnostics) -> PipelineSpec {
    let mut spec = PipelineSpec {
        name: None,
        description: None,
        vars: IndexMap::new(),
        connections: IndexMap::new(),
        sources: IndexMap::new(),
        transforms: IndexMap::new(),
        checks: IndexMap::new(),
        sinks: IndexMap::new(),
        tests: IndexMap::new(),
        state: None,
        engine: None,
    };
    let Some(entries) = root.as_map() else {
        return spec;
    };
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        let mut put = |r: Result<(), DeError>| {
            if let Err(e) = r {
                diags.push(cx.de_error(e));
            }
        };
        match key {
            "name" => put(from_node(v, key).map(|x| spec.name = x)),
            "description" => put(from_node(v, key).map(|x| spec.description = x)),
            "vars" => put(from_node(v, key).map(|x| spec.vars = x)),
            "state" => put(from_node(v, key).map(|x| spec.state = x)),
            "engine" => put(from_node(v, key).map(|x| spec.engine = x)),
            "connections" => spec.connections = section(v, key, cx, diags, |n, p| from_node(n, p)),
            "transforms" => spec.transforms = section(v, key, cx, diags, |n, p| from_node(n, p)),
            "checks" => spec.checks = section(v, key, cx, diags, |n, p| from_node(n, p)),
            "tests" => spec.tests = section(v, key, cx, diags, |n, p| from_node(n, p)),
            "sources" => {
                spec.sources = typed_section(v, key, cx, diags, |kind, n, p| {
                    source_entry(kind)
                        .map(|e| (e.parse)(n, p).map(SourceSpec))
                        .transpose()
                })
            }
            "sinks" => {
                spec.sinks = typed_section(v, key, cx, diags, |kind, n, p| {
                    sink_entry(kind)
                        .map(|e| (e.parse)(n, p).map(SinkSpec))
                        .transpose()
                })
            }
            other => {
                let mut d = Diagnostic::error(format!("unknown key `{other}`"))
                    .in_file(cx.file)
                    .at_path(other)
                    .at(Some(k.pos));
                d = d.with_help(
                    did_you_mean(other, TOP_KEYS.iter().copied()).unwrap_or_else(|| {
                        format!("the top-level keys are {}", TOP_KEYS.join(", "))
                    }),
                );
                diags.push(d);
            }
        }
    }
    spec
}

/// Deserializes each entry of a named section separately, collecting all errors.
fn section<T>(
    node: &Node,
    key: &str,
    cx: &Cx,
    diags: &mut Diagnostics,
    f: impl Fn(&Node, &str) -> Result<T, DeError>,
) -> IndexMap<String, T> {
    let mut out = IndexMap::new();
    if node.is_null() {
        return out;
    }
    let Some(entries) = node.as_map() else {
        diags.push(
            Diagnostic::error(format!(
                "`{key}` is a mapping of names to entries, found {}",
                node.type_name()
            ))
            .in_file(cx.file)
            .at_path(key)
            .at(Some(node.pos)),
        );
        return out;
    };
    for (k, v) in entries {
        let name = k.as_str().unwrap_or_default().to_string();
        let path = join(key, &name);
        match f(v, &path) {
            Ok(x) => {
                out.insert(name, x);
            }
            Err(e) => diags.push(cx.de_error(e)),
        }
    }
    out
}

/// Like [`section`], for entries whose `type` key picks the struct.
fn typed_section<T>(
    node: &Node,
    key: &str,
    cx: &Cx,
    diags: &mut Diagnostics,
    f: impl Fn(&str, &Node, &str) -> Result<Option<T>, DeError>,
) -> IndexMap<String, T> {
    let known: Vec<&str> = if key == "sources" {
        SOURCES.iter().map(|e| e.name).collect()
    } else {
        SINKS.iter().map(|e| e.name).collect()
    };
    let planned: &[&str] = if key == "sources" {
        PLANNED_SOURCES
    } else {
        PLANNED_SINKS
    };
    let what = if key == "sources" { "source" } else { "sink" };
    let result = section(node, key, cx, diags, |n, path| {
        let Some(kind_node) = n.get("type") else {
            return Err(DeError {
                message: format!("this {what} has no `type` (one of {})", known.join(", ")),
                pos: Some(n.pos),
                path: Some(path.to_string()),
                unknown_field: None,
            });
        };
        let kind = kind_node.as_str().unwrap_or_default();
        match f(kind, n, path)? {
            Some(x) => Ok(Some(x)),
            None => {
                let message = if planned.contains(&kind) {
                    format!(
                        "{what} type `{kind}` is not available in this version of etl (available: {})",
                        known.join(", ")
                    )
                } else {
                    let hint = did_you_mean(kind, known.iter().copied())
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    format!(
                        "unknown {what} type `{kind}` (one of {}){hint}",
                        known.join(", ")
                    )
                };
                Err(DeError {
                    message,
                    pos: Some(kind_node.pos),
                    path: Some(join(path, "type")),
                    unknown_field: None,
                })
            }
        }
    });
    result
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}
