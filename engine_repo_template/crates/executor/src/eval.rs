//! Expression evaluation with SQLite's arithmetic rules.

use parser::{BinaryOp, Expr, Literal, UnaryOp};
use storage::Value;

use crate::error::Error;
use crate::operators::Row;

/// Evaluate `expr` against `row`.
// `row` only feeds recursion until column references exist; the signature is the one they need.
#[allow(clippy::only_used_in_recursion)]
pub fn eval(expr: &Expr, row: &Row) -> Result<Value, Error> {
    match expr {
        Expr::Literal(lit) => Ok(literal(lit)),
        Expr::Unary { op, expr } => {
            let v = eval(expr, row)?;
            Ok(match op {
                // Unary plus is a no-op in SQLite, even on text: +'abc' is 'abc'.
                UnaryOp::Plus => v,
                UnaryOp::Neg => negate(v),
            })
        }
        Expr::Binary { op, left, right } => Ok(arithmetic(*op, eval(left, row)?, eval(right, row)?)),
    }
}

fn literal(lit: &Literal) -> Value {
    match lit {
        Literal::Null => Value::Null,
        Literal::Integer(i) => Value::Integer(*i),
        Literal::Real(r) => Value::Real(*r),
        Literal::Text(s) => Value::Text(s.clone()),
    }
}

fn negate(v: Value) -> Value {
    match numeric(v) {
        Value::Integer(i) => i.checked_neg().map(Value::Integer).unwrap_or(Value::Real(-(i as f64))),
        Value::Real(r) => Value::Real(-r),
        other => other,
    }
}

/// Text and blobs in arithmetic become numbers by their longest numeric prefix ('3abc' is 3, 'x' is 0).
pub fn numeric(v: Value) -> Value {
    match v {
        Value::Text(s) => parse_numeric_prefix(&s),
        Value::Blob(b) => parse_numeric_prefix(&String::from_utf8_lossy(&b)),
        other => other,
    }
}

fn parse_numeric_prefix(s: &str) -> Value {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    let int_end = end;
    if end < b.len() && b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start || (end == digits_start + 1 && b[digits_start] == b'.') {
        return Value::Integer(0);
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut j = end + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            end = j;
        }
    }
    if end == int_end {
        if let Ok(i) = s[..end].parse::<i64>() {
            return Value::Integer(i);
        }
    }
    Value::Real(s[..end].parse::<f64>().unwrap_or(0.0))
}

fn arithmetic(op: BinaryOp, l: Value, r: Value) -> Value {
    if matches!(l, Value::Null) || matches!(r, Value::Null) {
        return Value::Null;
    }
    let (l, r) = (numeric(l), numeric(r));
    if op == BinaryOp::Rem {
        return remainder(l, r);
    }
    match (&l, &r) {
        (Value::Integer(a), Value::Integer(b)) => {
            let (a, b) = (*a, *b);
            let exact = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div if b == 0 => return Value::Null,
                BinaryOp::Div => a.checked_div(b),
                BinaryOp::Rem => unreachable!("handled above"),
            };
            // Integer overflow falls back to floating point, as in SQLite.
            exact.map(Value::Integer).unwrap_or_else(|| real_op(op, a as f64, b as f64))
        }
        _ => real_op(op, as_f64(&l), as_f64(&r)),
    }
}

fn real_op(op: BinaryOp, a: f64, b: f64) -> Value {
    let v = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div if b == 0.0 => return Value::Null,
        BinaryOp::Div => a / b,
        BinaryOp::Rem => unreachable!("remainder is integer arithmetic"),
    };
    if v.is_nan() {
        Value::Null
    } else {
        Value::Real(v)
    }
}

/// `%` works on the integer parts; the result is REAL if either operand was.
fn remainder(l: Value, r: Value) -> Value {
    let real = matches!(l, Value::Real(_)) || matches!(r, Value::Real(_));
    let (a, b) = (as_i64(&l), as_i64(&r));
    if b == 0 {
        return Value::Null;
    }
    let m = if b == -1 { 0 } else { a % b };
    if real {
        Value::Real(m as f64)
    } else {
        Value::Integer(m)
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Real(r) => *r,
        _ => 0.0,
    }
}

fn as_i64(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        // `as` saturates, which matches SQLite's clamping of out-of-range reals.
        Value::Real(r) => *r as i64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parser::{parse_statement, Statement};

    fn value(sql: &str) -> Value {
        let Statement::Select(s) = parse_statement(&format!("SELECT {sql}")).unwrap();
        eval(&s.columns[0].expr, &Vec::new()).unwrap()
    }

    #[test]
    fn integer_arithmetic() {
        assert_eq!(value("7 / 2"), Value::Integer(3));
        assert_eq!(value("-7 / 2"), Value::Integer(-3));
        assert_eq!(value("-7 % 3"), Value::Integer(-1));
        assert_eq!(value("2 + 3 * 4"), Value::Integer(14));
    }

    #[test]
    fn division_by_zero_is_null() {
        assert_eq!(value("1 / 0"), Value::Null);
        assert_eq!(value("1.5 / 0"), Value::Null);
        assert_eq!(value("5 % 0"), Value::Null);
    }

    #[test]
    fn overflow_becomes_real() {
        assert_eq!(value("9223372036854775807 + 1"), Value::Real(9223372036854775808.0));
        assert_eq!(value("-(-9223372036854775808)"), Value::Real(9223372036854775808.0));
    }

    #[test]
    fn mixed_and_text_operands() {
        assert_eq!(value("1 + 0.5"), Value::Real(1.5));
        assert_eq!(value("'3abc' + 1"), Value::Integer(4));
        assert_eq!(value("'1.5' * 2"), Value::Real(3.0));
        assert_eq!(value("'x' - 1"), Value::Integer(-1));
        assert_eq!(value("5.5 % 2"), Value::Real(1.0));
        assert_eq!(value("NULL + 1"), Value::Null);
        assert_eq!(value("+'abc'"), Value::Text("abc".into()));
    }
}
