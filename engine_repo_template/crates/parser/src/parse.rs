//! Recursive descent over tokens, with precedence climbing for expressions.

use std::fmt;

use crate::ast::*;
use crate::lexer::{tokenize, Token};

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Not SQL (what SQLite would also reject).
    Syntax(String),
    /// SQL this engine does not support yet; the text names the feature so agents can find it.
    NotImplemented(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax(msg) => f.write_str(msg),
            ParseError::NotImplemented(what) => write!(f, "not implemented: {what}"),
        }
    }
}

type Result<T> = std::result::Result<T, ParseError>;

/// Parse one statement (as cut by `split_statements`); a trailing `;` is allowed.
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let tokens = tokenize(sql).map_err(ParseError::Syntax)?;
    let mut p = Parser { tokens, pos: 0 };
    let stmt = p.statement()?;
    p.eat_op(";");
    match p.peek() {
        None => Ok(stmt),
        Some(t) => Err(near(t)),
    }
}

/// Words that start a statement SQLite knows; each is reported as not implemented, not as a syntax error.
const STATEMENT_WORDS: [&str; 17] = [
    "CREATE", "INSERT", "REPLACE", "UPDATE", "DELETE", "DROP", "ALTER", "BEGIN", "COMMIT", "END", "ROLLBACK",
    "SAVEPOINT", "RELEASE", "WITH", "VALUES", "PRAGMA", "EXPLAIN",
];
const CLAUSE_WORDS: [&str; 12] =
    ["FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "INTERSECT", "EXCEPT", "WINDOW", "OFFSET", "INTO"];
const OPERATOR_WORDS: [&str; 14] = [
    "AND", "OR", "NOT", "IS", "IN", "LIKE", "GLOB", "BETWEEN", "COLLATE", "MATCH", "REGEXP", "ISNULL", "NOTNULL",
    "ESCAPE",
];

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek_word().as_deref() == Some(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn statement(&mut self) -> Result<Statement> {
        let Some(word) = self.peek_word() else {
            return Err(self.peek().map(near).unwrap_or_else(incomplete));
        };
        if word == "SELECT" {
            self.pos += 1;
            return Ok(Statement::Select(self.select()?));
        }
        if STATEMENT_WORDS.contains(&word.as_str()) {
            let second = self.tokens.get(self.pos + 1).and_then(|t| match t {
                Token::Word(w) if word == "CREATE" || word == "DROP" || word == "ALTER" => Some(w.to_ascii_uppercase()),
                _ => None,
            });
            let what = match second {
                Some(s) => format!("{word} {s}"),
                None => word,
            };
            return Err(ParseError::NotImplemented(what));
        }
        Err(near(self.peek().expect("peek_word saw a token")))
    }

    fn select(&mut self) -> Result<Select> {
        if let Some(w) = self.peek_word().filter(|w| w == "DISTINCT" || w == "ALL") {
            return Err(ParseError::NotImplemented(format!("SELECT {w}")));
        }
        let mut columns = vec![self.result_column()?];
        while self.eat_op(",") {
            columns.push(self.result_column()?);
        }
        if let Some(w) = self.peek_word().filter(|w| CLAUSE_WORDS.contains(&w.as_str())) {
            return Err(ParseError::NotImplemented(format!("{w} clause")));
        }
        Ok(Select { columns })
    }

    fn result_column(&mut self) -> Result<ResultColumn> {
        if matches!(self.peek(), Some(Token::Op("*"))) {
            return Err(ParseError::NotImplemented("SELECT *".into()));
        }
        let expr = self.expr(0)?;
        let alias = if self.eat_word("AS") {
            Some(self.name()?)
        } else {
            match self.peek() {
                Some(Token::QuotedIdent(s)) | Some(Token::Str(s)) => {
                    let s = s.clone();
                    self.pos += 1;
                    Some(s)
                }
                Some(Token::Word(w)) if !is_reserved(w) => {
                    let w = w.clone();
                    self.pos += 1;
                    Some(w)
                }
                _ => None,
            }
        };
        Ok(ResultColumn { expr, alias })
    }

    fn name(&mut self) -> Result<String> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::QuotedIdent(w)) | Some(Token::Str(w)) => Ok(w),
            Some(t) => Err(near(&t)),
            None => Err(incomplete()),
        }
    }

    /// Precedence climbing; `min` is the weakest binding power still accepted.
    fn expr(&mut self, min: u8) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) => *o,
                Some(Token::Word(w)) if OPERATOR_WORDS.contains(&w.to_ascii_uppercase().as_str()) => {
                    return Err(ParseError::NotImplemented(format!("operator {}", w.to_ascii_uppercase())));
                }
                _ => break,
            };
            let (power, bop) = match op {
                "+" => (10, BinaryOp::Add),
                "-" => (10, BinaryOp::Sub),
                "*" => (11, BinaryOp::Mul),
                "/" => (11, BinaryOp::Div),
                "%" => (11, BinaryOp::Rem),
                "," | ")" | ";" => break,
                other => return Err(ParseError::NotImplemented(format!("operator {other}"))),
            };
            if power < min {
                break;
            }
            self.pos += 1;
            let right = self.expr(power + 1)?;
            left = Expr::Binary { op: bop, left: Box::new(left), right: Box::new(right) };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.eat_op("-") {
            // -9223372036854775808 is the one integer literal whose magnitude does not fit in i64.
            if matches!(self.peek(), Some(Token::Number(n)) if n == "9223372036854775808") {
                self.pos += 1;
                return Ok(Expr::Literal(Literal::Integer(i64::MIN)));
            }
            return Ok(Expr::Unary { op: UnaryOp::Neg, expr: Box::new(self.unary()?) });
        }
        if self.eat_op("+") {
            return Ok(Expr::Unary { op: UnaryOp::Plus, expr: Box::new(self.unary()?) });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        match self.next() {
            Some(Token::Number(n)) => Ok(Expr::Literal(number(&n)?)),
            Some(Token::Str(s)) => Ok(Expr::Literal(Literal::Text(s))),
            Some(Token::Blob(_)) => Err(ParseError::NotImplemented("blob literals".into())),
            Some(Token::Op("(")) => {
                if self.peek_word().as_deref() == Some("SELECT") {
                    return Err(ParseError::NotImplemented("subqueries".into()));
                }
                let e = self.expr(0)?;
                if !self.eat_op(")") {
                    return Err(self.peek().map(near).unwrap_or_else(incomplete));
                }
                Ok(e)
            }
            Some(Token::Word(w)) => {
                let upper = w.to_ascii_uppercase();
                if upper == "NULL" {
                    return Ok(Expr::Literal(Literal::Null));
                }
                if matches!(self.peek(), Some(Token::Op("("))) {
                    return Err(ParseError::NotImplemented(format!("function {}()", w.to_ascii_lowercase())));
                }
                if is_reserved(&w) {
                    return Err(ParseError::NotImplemented(format!("{upper} expressions")));
                }
                Err(ParseError::NotImplemented(format!("column references ({w})")))
            }
            Some(Token::QuotedIdent(w)) => Err(ParseError::NotImplemented(format!("column references ({w})"))),
            Some(t) => Err(near(&t)),
            None => Err(incomplete()),
        }
    }
}

fn number(text: &str) -> Result<Literal> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        // Hex literals are 64-bit two's complement: 0xFFFFFFFFFFFFFFFF is -1.
        return u64::from_str_radix(hex, 16)
            .map(|v| Literal::Integer(v as i64))
            .map_err(|_| ParseError::Syntax(format!("hex literal too big: {text}")));
    }
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Literal::Integer(i));
        }
    }
    text.parse::<f64>().map(Literal::Real).map_err(|_| ParseError::Syntax(format!("unrecognized token: \"{text}\"")))
}

fn is_reserved(word: &str) -> bool {
    let w = word.to_ascii_uppercase();
    CLAUSE_WORDS.contains(&w.as_str())
        || OPERATOR_WORDS.contains(&w.as_str())
        || ["SELECT", "CASE", "CAST", "EXISTS", "WHEN", "THEN", "ELSE", "END", "AS", "ON", "USING"].contains(&w.as_str())
}

fn near(t: &Token) -> ParseError {
    let text = match t {
        Token::Word(w) | Token::Number(w) => w.clone(),
        Token::QuotedIdent(w) => format!("\"{w}\""),
        Token::Str(s) => format!("'{s}'"),
        Token::Blob(b) => format!("x'{b}'"),
        Token::Op(o) => o.to_string(),
    };
    ParseError::Syntax(format!("near \"{text}\": syntax error"))
}

fn incomplete() -> ParseError {
    ParseError::Syntax("incomplete input".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_column(sql: &str) -> Expr {
        match parse_statement(sql).unwrap() {
            Statement::Select(s) => s.columns.into_iter().next().unwrap().expr,
        }
    }

    fn int(i: i64) -> Box<Expr> {
        Box::new(Expr::Literal(Literal::Integer(i)))
    }

    #[test]
    fn multiplication_binds_tighter_than_addition() {
        assert_eq!(
            only_column("SELECT 1 + 2 * 3"),
            Expr::Binary {
                op: BinaryOp::Add,
                left: int(1),
                right: Box::new(Expr::Binary { op: BinaryOp::Mul, left: int(2), right: int(3) }),
            }
        );
        // Left associativity: 8 - 2 - 1 is (8 - 2) - 1.
        assert_eq!(
            only_column("SELECT 8 - 2 - 1;"),
            Expr::Binary {
                op: BinaryOp::Sub,
                left: Box::new(Expr::Binary { op: BinaryOp::Sub, left: int(8), right: int(2) }),
                right: int(1),
            }
        );
    }

    #[test]
    fn literals_and_aliases() {
        let Statement::Select(s) = parse_statement("SELECT 1.5 AS a, 'x' b, NULL, 0x10, 99999999999999999999").unwrap();
        assert_eq!(s.columns[0].alias.as_deref(), Some("a"));
        assert_eq!(s.columns[1].alias.as_deref(), Some("b"));
        assert_eq!(s.columns[2].expr, Expr::Literal(Literal::Null));
        assert_eq!(s.columns[3].expr, Expr::Literal(Literal::Integer(16)));
        assert_eq!(s.columns[4].expr, Expr::Literal(Literal::Real(1e20)));
        assert_eq!(only_column("SELECT -9223372036854775808"), Expr::Literal(Literal::Integer(i64::MIN)));
    }

    #[test]
    fn errors_distinguish_unsupported_from_invalid() {
        assert!(matches!(parse_statement("CREATE TABLE t(a)"), Err(ParseError::NotImplemented(w)) if w == "CREATE TABLE"));
        assert!(matches!(parse_statement("SELECT 1 FROM t"), Err(ParseError::NotImplemented(_))));
        assert!(matches!(parse_statement("SELECT 1 +"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse_statement("SELEKT 1"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse_statement("SELECT (1"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse_statement("SELECT 1 2"), Err(ParseError::Syntax(_))));
    }
}
