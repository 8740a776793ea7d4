//! A bound on how deeply SQL expressions nest, checked before DataFusion plans them.
//!
//! DataFusion names, plans and optimizes expressions recursively, and naming costs time
//! that grows with the square of the depth: a step with a left-deep `1 + 1 + …` chain of
//! 8 000 terms overflowed the stack, and 20 000 terms ran for minutes. sqlparser's own
//! recursion limit does not see such a chain (it parses `a + b + c` in a loop), so Runink
//! measures the parsed tree and refuses expressions deeper than [`MAX_EXPR_DEPTH`] with a
//! message, instead of crashing or hanging.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};

/// The deepest expression accepted: far beyond hand-written SQL (a 1 000-way `OR`).
pub const MAX_EXPR_DEPTH: usize = 1_000;

/// Checks every statement in `sql`; an error says how deep the expression is. Text that does
/// not parse passes: DataFusion reports the syntax error with its position.
pub fn check_sql(sql: &str) -> Result<(), String> {
    let Ok(statements) = DFParser::parse_sql(sql) else {
        return Ok(());
    };
    let mut depth = Depth::default();
    for statement in &statements {
        if let DfStatement::Statement(s) = statement
            && s.visit(&mut depth).is_break()
        {
            return Err(too_deep());
        }
    }
    Ok(())
}

/// Checks one SQL expression (a `where=` or `when=` condition).
pub fn check_expression(expression: &str) -> Result<(), String> {
    check_sql(&format!("SELECT {expression}"))
}

fn too_deep() -> String {
    format!(
        "an expression nests more than {MAX_EXPR_DEPTH} levels deep (e.g. a chain of over \
         {MAX_EXPR_DEPTH} `+` or `OR` terms); split it across steps, or use IN (…) for long lists"
    )
}

#[derive(Default)]
struct Depth {
    now: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.now += 1;
        if self.now > MAX_EXPR_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.now -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_chains_are_refused_and_ordinary_sql_passes() {
        let chain = |n: usize| vec!["1"; n].join(" + ");
        assert!(check_sql(&format!("SELECT {} FROM t", chain(900))).is_ok());
        let err = check_sql(&format!("SELECT {} FROM t", chain(5_000))).unwrap_err();
        assert!(err.contains("more than 1000 levels"), "{err}");
        assert!(check_expression(&chain(2_000)).is_err());
        let in_list: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
        assert!(check_expression(&format!("a IN ({})", in_list.join(", "))).is_ok());
        assert!(check_sql("SELEC nonsense").is_ok());
    }
}
