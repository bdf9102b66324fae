//! The dependency graph as Mermaid or Graphviz dot text.

use crate::model::Pipeline;

/// Output format of `etl graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// Graphviz dot.
    Dot,
}

fn id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Edges of the graph: (from, to).
pub fn edges(p: &Pipeline) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in p.transforms.values() {
        for d in &t.deps {
            out.push((d.clone(), t.name.clone()));
        }
    }
    for s in p.sinks.values() {
        out.push((s.from.clone(), s.name.clone()));
    }
    out
}

/// Renders the graph.
pub fn render(p: &Pipeline, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (name, s) in &p.sources {
                out.push_str(&format!(
                    "  {}[(\"{name}<br/><i>{}</i>\")]\n",
                    id(name),
                    s.spec.kind()
                ));
            }
            for name in p.transforms.keys() {
                out.push_str(&format!("  {}[\"{name}\"]\n", id(name)));
            }
            for (name, s) in &p.sinks {
                out.push_str(&format!(
                    "  {}[/\"{name}<br/><i>{}</i>\"/]\n",
                    id(name),
                    s.spec.kind()
                ));
            }
            for (a, b) in edges(p) {
                out.push_str(&format!("  {} --> {}\n", id(&a), id(&b)));
            }
        }
        GraphFormat::Dot => {
            out.push_str(&format!(
                "digraph \"{}\" {{\n  rankdir=LR;\n",
                p.name.replace('"', "'")
            ));
            for (name, s) in &p.sources {
                out.push_str(&format!(
                    "  \"{name}\" [shape=cylinder, label=\"{name}\\n({})\"];\n",
                    s.spec.kind()
                ));
            }
            for name in p.transforms.keys() {
                out.push_str(&format!("  \"{name}\" [shape=box];\n"));
            }
            for (name, s) in &p.sinks {
                out.push_str(&format!(
                    "  \"{name}\" [shape=parallelogram, label=\"{name}\\n({})\"];\n",
                    s.spec.kind()
                ));
            }
            for (a, b) in edges(p) {
                out.push_str(&format!("  \"{a}\" -> \"{b}\";\n"));
            }
            out.push_str("}\n");
        }
    }
    out
}
