//! SQLite's five storage classes and their text form.

use std::fmt;

/// One SQL value, with SQLite's dynamic typing: the type belongs to the value, not the column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// The text sqlite3's list mode prints for this value (NULL prints as nothing).
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => format_real(*r),
            Value::Text(s) => s.clone(),
            // The CLI prints a blob's bytes as a C string, so output stops at the first NUL.
            Value::Blob(b) => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).into_owned()
            }
        }
    }

    /// The name `typeof()` returns.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// SQLite renders a REAL with printf's `%!.15g`: 15 significant digits, always a decimal point,
/// a two-digit exponent at least (`1.0e+20`, `1.0e-05`), `Inf`/`-Inf`, and `0.0` for both zeros.
pub fn format_real(r: f64) -> String {
    if r.is_nan() {
        return String::new();
    }
    if r.is_infinite() {
        return if r > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if r == 0.0 {
        return "0.0".into();
    }
    // Rounding to 15 significant digits first decides the exponent, exactly as %g does.
    let sci = format!("{:.14e}", r);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    if !(-4..15).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", trim_fraction(mantissa), sign, exp.abs())
    } else {
        trim_fraction(&format!("{:.*}", (14 - exp) as usize, r))
    }
}

/// Drop trailing zeros of the fraction but keep at least one digit after the point (`%!g`).
fn trim_fraction(s: &str) -> String {
    if !s.contains('.') {
        return format!("{s}.0");
    }
    let t = s.trim_end_matches('0');
    if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_print_like_sqlite3() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e20, "1.0e+20"),
            (1e15, "1.0e+15"),
            (1e14, "100000000000000.0"),
            (1e-5, "1.0e-05"),
            (0.0001, "0.0001"),
            (2.5e-10, "2.5e-10"),
            (0.1 + 0.2, "0.3"),
            (1.0 / 3.0, "0.333333333333333"),
            (123456789012345.6, "123456789012346.0"),
            (-0.0, "0.0"),
            (-2.5, "-2.5"),
            (9.99e300, "9.99e+300"),
            (f64::INFINITY, "Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(format_real(v), want, "formatting {v:?}");
        }
    }

    #[test]
    fn list_mode_text() {
        assert_eq!(Value::Null.to_text(), "");
        assert_eq!(Value::Integer(-7).to_text(), "-7");
        assert_eq!(Value::Blob(b"AB\0C".to_vec()).to_text(), "AB");
        assert_eq!(Value::Text("a|b".into()).to_text(), "a|b");
    }
}
