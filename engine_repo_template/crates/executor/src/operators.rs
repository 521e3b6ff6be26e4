use parser::Expr;
use planner::Plan;
use storage::Value;

use crate::error::Error;
use crate::eval::eval;

pub type Row = Vec<Value>;

/// The iterator protocol every operator implements: `Ok(None)` means the input is exhausted.
pub trait Operator {
    fn next(&mut self) -> Result<Option<Row>, Error>;
}

/// Turn a plan into a tree of operators, ready to pull rows from.
pub fn build(plan: &Plan) -> Box<dyn Operator> {
    match plan {
        Plan::SingleRow => Box::new(SingleRow { done: false }),
        Plan::Project { input, exprs, .. } => Box::new(Project { input: build(input), exprs: exprs.clone() }),
    }
}

struct SingleRow {
    done: bool,
}

impl Operator for SingleRow {
    fn next(&mut self) -> Result<Option<Row>, Error> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(Vec::new()))
    }
}

struct Project {
    input: Box<dyn Operator>,
    exprs: Vec<Expr>,
}

impl Operator for Project {
    fn next(&mut self) -> Result<Option<Row>, Error> {
        let Some(row) = self.input.next()? else { return Ok(None) };
        self.exprs.iter().map(|e| eval(e, &row)).collect::<Result<Row, Error>>().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parser::parse_statement;

    fn rows(sql: &str) -> Vec<Row> {
        let plan = planner::plan(&parse_statement(sql).unwrap()).unwrap();
        let mut op = build(&plan);
        let mut out = Vec::new();
        while let Some(r) = op.next().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn project_over_single_row_yields_one_row() {
        assert_eq!(rows("SELECT 1, 'a', NULL"), vec![vec![Value::Integer(1), Value::Text("a".into()), Value::Null]]);
    }
}
