//! How deeply SQL nests. A long chain of `AND`, `OR` or `+` is one deep expression tree (as
//! is a long chain of `UNION`s), and DataFusion's planning time grows with the square of its
//! depth while its recursion can overflow the stack. Such SQL is refused with a clear error
//! before it reaches the engine.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The deepest an SQL expression, or a chain of set operations, may nest.
pub const MAX_SQL_DEPTH: usize = 1000;

/// Counts nesting while visiting, and stops as soon as it is too deep (so the visit itself
/// never recurses further than the limit).
#[derive(Default)]
struct Depth {
    current: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if set_operation_depth(&query.body) > MAX_SQL_DEPTH {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.current += 1;
        if self.current > MAX_SQL_DEPTH {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

/// How deeply `UNION`/`INTERSECT`/`EXCEPT` nest in a query body (walked without recursion).
fn set_operation_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(body, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        if deepest > MAX_SQL_DEPTH {
            break;
        }
        if let SetExpr::SetOperation { left, right, .. } = e {
            stack.push((left, d + 1));
            stack.push((right, d + 1));
        }
    }
    deepest
}

/// True when a parsed statement nests deeper than [`MAX_SQL_DEPTH`].
pub fn too_deep<V: Visit>(node: &V) -> bool {
    node.visit(&mut Depth::default()).is_break()
}

/// The message for SQL that nests too deeply.
pub fn too_deep_message() -> String {
    format!(
        "the SQL nests more than {MAX_SQL_DEPTH} levels deep (a very long chain of AND, OR, + or UNION?)"
    )
}

/// Checks an SQL expression on its own (a check's `expect`). Text that does not parse is
/// left to the engine, which reports it with its own message.
pub fn expression_too_deep(sql: &str) -> bool {
    let Ok(mut parser) = Parser::new(&GenericDialect {}).try_with_sql(sql) else {
        return false;
    };
    match parser.parse_expr() {
        Ok(expr) => {
            let deep = too_deep(&expr);
            if deep {
                // Dropping a tree this deep recurses once per level; leave it to the OS.
                std::mem::forget(expr);
            }
            deep
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_chains_are_too_deep_and_wide_lists_are_not() {
        let chain = |n: usize, op: &str| vec!["a"; n].join(op);
        assert!(!expression_too_deep(&chain(MAX_SQL_DEPTH, " + ")));
        assert!(expression_too_deep(&chain(MAX_SQL_DEPTH + 2, " + ")));
        assert!(expression_too_deep(&chain(50_000, " AND ")));
        let list = (0..50_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        assert!(!expression_too_deep(&format!("a IN ({list})")));
        assert!(!expression_too_deep("this is not ) sql"));
    }
}
