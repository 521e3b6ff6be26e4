//! AST to plan. The plan is a tree of relational operators the executor turns into volcano iterators.
//!
//! Roadmap: name resolution against the catalog, scans, filters, joins, aggregates, sorts, index
//! selection and, last, cost-based choices from table statistics (DESIGN.md).

use std::fmt;

use parser::{Expr, Select, Statement};

/// One node of a query plan; each variant becomes one executor operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Exactly one row with no columns: the input of a SELECT without FROM.
    SingleRow,
    /// Evaluate `exprs` over each input row.
    Project { input: Box<Plan>, exprs: Vec<Expr>, names: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanError {
    NotImplemented(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotImplemented(what) => write!(f, "not implemented: {what}"),
        }
    }
}

pub fn plan(stmt: &Statement) -> Result<Plan, PlanError> {
    match stmt {
        Statement::Select(select) => plan_select(select),
    }
}

fn plan_select(select: &Select) -> Result<Plan, PlanError> {
    let exprs = select.columns.iter().map(|c| c.expr.clone()).collect();
    // Column names are not printed in list mode, but the shell's header mode and views will need them.
    let names = select
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| c.alias.clone().unwrap_or_else(|| format!("column{}", i + 1)))
        .collect();
    Ok(Plan::Project { input: Box::new(Plan::SingleRow), exprs, names })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parser::parse_statement;

    #[test]
    fn select_without_from_projects_one_row() {
        let stmt = parse_statement("SELECT 1 AS one, 2").unwrap();
        let Plan::Project { input, exprs, names } = plan(&stmt).unwrap() else { panic!("expected Project") };
        assert_eq!(*input, Plan::SingleRow);
        assert_eq!(exprs.len(), 2);
        assert_eq!(names, vec!["one".to_string(), "column2".to_string()]);
    }
}
