//! Characters to tokens. Keywords are not special here: the parser matches identifiers case-insensitively.

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// Unquoted word: keyword or identifier.
    Word(String),
    /// `"x"`, `[x]` or `` `x` ``: always an identifier.
    QuotedIdent(String),
    /// `'...'` with `''` unescaped.
    Str(String),
    /// Numeric literal kept as written; the parser decides integer, real or too big.
    Number(String),
    /// `x'0A'`: hex digits as written.
    Blob(String),
    /// Punctuation and operators: `( ) , ; . + - * / % = == != <> < <= > >= || | & ~ << >>`.
    Op(&'static str),
}

const OPS: [&str; 23] = [
    "||", "<<", ">>", "<=", ">=", "==", "!=", "<>", "(", ")", ",", ";", ".", "+", "-", "*", "/", "%", "=",
    "<", ">", "|", "&",
];

pub fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if (c == 'x' || c == 'X') && chars.get(i + 1) == Some(&'\'') {
            let (text, next) = quoted(&chars, i + 1, '\'')?;
            tokens.push(Token::Blob(text));
            i = next;
        } else if c == '\'' {
            let (text, next) = quoted(&chars, i, '\'')?;
            tokens.push(Token::Str(text));
            i = next;
        } else if c == '"' || c == '`' {
            let (text, next) = quoted(&chars, i, c)?;
            tokens.push(Token::QuotedIdent(text));
            i = next;
        } else if c == '[' {
            let end = chars[i..].iter().position(|&x| x == ']').ok_or("unrecognized token: \"[\"")?;
            tokens.push(Token::QuotedIdent(chars[i + 1..i + end].iter().collect()));
            i += end + 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let (text, next) = number(&chars, i)?;
            tokens.push(Token::Number(text));
            i = next;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '~' {
            tokens.push(Token::Op("~"));
            i += 1;
        } else {
            let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = OPS.iter().find(|op| rest.starts_with(*op)).ok_or(format!("unrecognized token: \"{c}\""))?;
            tokens.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(tokens)
}

/// A quoted run starting at `chars[start] == quote`; a doubled quote stands for one quote.
fn quoted(chars: &[char], start: usize, quote: char) -> Result<(String, usize), String> {
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(format!("unrecognized token: \"{}\"", chars[start..].iter().collect::<String>())),
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    text.push(quote);
                    i += 2;
                } else {
                    return Ok((text, i + 1));
                }
            }
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

fn number(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start;
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x') | Some('X')) {
        i += 2;
        while i < chars.len() && chars[i].is_ascii_hexdigit() {
            i += 1;
        }
    } else {
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        if matches!(chars.get(i), Some('e') | Some('E')) {
            let mut j = i + 1;
            if matches!(chars.get(j), Some('+') | Some('-')) {
                j += 1;
            }
            if chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                i = j;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
    }
    let text: String = chars[start..i].iter().collect();
    // `1abc` is one bad token in SQLite, not a number followed by a word.
    if chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
        return Err(format!("unrecognized token: \"{text}{}\"", chars[i]));
    }
    Ok((text, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_a_select() {
        let toks = tokenize("SELECT 1.5e3, 'it''s' AS \"x\" -- c\n|| x'0a' <= 0x1F;").unwrap();
        assert_eq!(
            toks,
            vec![
                Token::Word("SELECT".into()),
                Token::Number("1.5e3".into()),
                Token::Op(","),
                Token::Str("it's".into()),
                Token::Word("AS".into()),
                Token::QuotedIdent("x".into()),
                Token::Op("||"),
                Token::Blob("0a".into()),
                Token::Op("<="),
                Token::Number("0x1F".into()),
                Token::Op(";"),
            ]
        );
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(tokenize("SELECT 'abc").is_err());
        assert!(tokenize("SELECT 12abc").is_err());
        assert!(tokenize("SELECT ?").is_err());
    }
}
