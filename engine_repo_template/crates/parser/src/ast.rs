//! The syntax tree. Grow it as the grammar grows; the planner is its only consumer.

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Select),
}

/// `SELECT <columns>`; FROM, WHERE, GROUP BY, ORDER BY and LIMIT are on the roadmap.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub columns: Vec<ResultColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResultColumn {
    pub expr: Expr,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Unary { op: UnaryOp, expr: Box<Expr> },
    Binary { op: BinaryOp, left: Box<Expr>, right: Box<Expr> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}
