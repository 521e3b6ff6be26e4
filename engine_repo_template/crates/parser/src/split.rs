//! Cut a script into statements at top-level semicolons.

/// Each statement's text including its `;` (the last one may lack it). Semicolons inside quotes,
/// identifiers and comments do not split. Pieces holding only whitespace and comments are dropped.
/// Known gap: `CREATE TRIGGER ... BEGIN ...; END;` needs the BEGIN/END nesting sqlite3_complete knows.
pub fn split_statements(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut has_code = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                i += 1;
                while i < chars.len() {
                    if chars[i] == close {
                        // A doubled quote is an escaped quote, not the end.
                        if close != ']' && i + 1 < chars.len() && chars[i + 1] == close {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
                has_code = true;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 1;
            }
            ';' => {
                if has_code {
                    out.push(chars[start..=i].iter().collect());
                }
                start = i + 1;
                has_code = false;
            }
            c if c.is_whitespace() => {}
            _ => has_code = true,
        }
        i += 1;
    }
    if has_code {
        out.push(chars[start.min(chars.len())..].iter().collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let got = split_statements("SELECT 'a;b'; -- x;y\nSELECT \"c;\" /* ; */ ;SELECT 3");
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], "SELECT 'a;b';");
        assert!(got[1].contains("\"c;\""));
        assert_eq!(got[2], "SELECT 3");
    }

    #[test]
    fn drops_empty_and_comment_only_pieces() {
        assert!(split_statements(" ;; -- nothing\n/* more */").is_empty());
        assert_eq!(split_statements("SELECT 'it''s;';").len(), 1);
    }
}
