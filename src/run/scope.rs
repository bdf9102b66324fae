//! What a run covers: the sinks selected, the checks on what they read, and which group of
//! sinks (see [`super::incremental`]) each check runs with.
//!
//! Every check runs on every run, also on a source or transform that no sink reads; with
//! `--select`, the checks on what the selected sinks read, and the rest are named in a note.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Check, Pipeline};

/// What a run covers: the sinks it writes, the checks it runs and what they all read.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The sinks to write.
    pub sinks: Vec<String>,
    /// The sources and transforms to plan: what the sinks and the checks read.
    pub needed: Vec<String>,
    /// The checks to run: every check, or under `--select` the checks on what the selected
    /// sinks read.
    pub checks: Vec<Check>,
    /// The checks `--select` leaves out.
    pub left_out: Vec<Check>,
}

impl Selection {
    /// A note naming the checks a `--select` leaves out, if it leaves any out.
    pub fn left_out_note(&self) -> Option<String> {
        if self.left_out.is_empty() {
            return None;
        }
        let names: Vec<String> = self
            .left_out
            .iter()
            .map(|c| format!("`{}` on `{}`", c.name, c.target))
            .collect();
        Some(format!(
            "--select leaves out {} check{} on what the selected sinks do not read: {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ))
    }
}

/// The sinks a run writes, the checks it runs, and every source and transform they need.
pub fn selection(p: &Pipeline, select: &[String]) -> Result<Selection, Diagnostics> {
    let mut diags = Diagnostics::default();
    let sinks: Vec<String> = if select.is_empty() {
        p.sinks.keys().cloned().collect()
    } else {
        let mut out = Vec::new();
        for s in select {
            if p.sinks.contains_key(s) {
                out.push(s.clone());
            } else if p.is_relation(s) {
                // A source or transform: the sinks that read it.
                let readers: Vec<String> = p
                    .sinks
                    .values()
                    .filter(|k| p.upstream(&k.name).contains(s))
                    .map(|k| k.name.clone())
                    .collect();
                if readers.is_empty() {
                    diags.push(Diagnostic::error(format!(
                        "--select {s}: no sink reads `{s}`"
                    )));
                }
                out.extend(readers);
            } else {
                let d = Diagnostic::error(format!(
                    "--select {s}: no sink, transform or source has this name"
                ));
                diags.push(d.suggest(s, p.sinks.keys().map(String::as_str)));
            }
        }
        out.dedup();
        out
    };
    if diags.has_errors() {
        return Err(diags);
    }
    let mut needed: Vec<String> = Vec::new();
    let need = |name: &str, needed: &mut Vec<String>| {
        for n in p.upstream(name) {
            if !needed.contains(&n) {
                needed.push(n);
            }
        }
    };
    for s in &sinks {
        need(s, &mut needed);
    }
    let (checks, left_out): (Vec<Check>, Vec<Check>) = p
        .checks
        .iter()
        .cloned()
        .partition(|c| select.is_empty() || needed.contains(&c.target));
    for c in &checks {
        for r in c.relations() {
            need(&r, &mut needed);
        }
    }
    Ok(Selection {
        sinks,
        needed,
        checks,
        left_out,
    })
}

/// The checks of each group of sinks, with what the group must plan; and the checks that
/// run on their own before the groups.
pub(super) struct Assigned {
    /// Per group: the sources and transforms to plan, and the checks to run.
    pub groups: Vec<(Vec<String>, Vec<Check>)>,
    /// Checks on what no group reads, when the first group reads only bounded rows.
    pub before: Vec<Check>,
}

/// A check runs with each group whose sinks read its target (seeing the rows that group
/// reads). A check on something no sink reads runs with the first group when that reads
/// whole sources, or else on its own, before the groups, on whole sources.
pub(super) fn assign(
    p: &Pipeline,
    sel: &Selection,
    groups: &[super::incremental::Group],
) -> Assigned {
    let mut out = Assigned {
        groups: Vec::new(),
        before: Vec::new(),
    };
    let mut covered: Vec<String> = Vec::new();
    for g in groups {
        let mut needed: Vec<String> = sel
            .needed
            .iter()
            .filter(|n| g.sinks.iter().any(|k| p.upstream(k).contains(n)))
            .cloned()
            .collect();
        let checks: Vec<Check> = sel
            .checks
            .iter()
            .filter(|c| needed.contains(&c.target))
            .cloned()
            .collect();
        covered.extend(checks.iter().map(|c| c.yaml_path.clone()));
        add_needs(p, &checks, &mut needed);
        out.groups.push((needed, checks));
    }
    let rest: Vec<Check> = sel
        .checks
        .iter()
        .filter(|c| !covered.contains(&c.yaml_path))
        .cloned()
        .collect();
    match (groups.first(), out.groups.first_mut()) {
        (Some(g), Some((needed, checks))) if g.bounds.is_empty() => {
            add_needs(p, &rest, needed);
            checks.extend(rest);
            // In file order.
            let at = |c: &Check| sel.checks.iter().position(|x| x.yaml_path == c.yaml_path);
            checks.sort_by_key(at);
        }
        _ => out.before = rest,
    }
    out
}

fn add_needs(p: &Pipeline, checks: &[Check], needed: &mut Vec<String>) {
    for c in checks {
        for r in c.relations() {
            for n in p.upstream(&r) {
                if !needed.contains(&n) {
                    needed.push(n);
                }
            }
        }
    }
}

/// Plans every check against the planned tables, before any data is read: all problems at
/// once.
pub(super) async fn plan_checks(
    ctx: &datafusion::prelude::SessionContext,
    p: &Pipeline,
    checks: &[Check],
) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics::default();
    for c in checks {
        if let Err(d) = crate::check::compile(ctx, p, c).await {
            diags.push(d);
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(())
}
