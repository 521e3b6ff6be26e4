//! The shell's loop, kept out of main.rs so it can be tested: run a script, print like sqlite3 -list.
//!
//! Output contract (the oracle depends on it): one line per row, values joined by `|`, NULL as nothing;
//! an error is ONE line `Error: <message>` on STDOUT (sqlite3 uses stderr; stdout keeps the error's place
//! among the rows) and the script goes on with the next statement.

use std::io::{self, Write};

use executor::Database;

/// Run every statement of `sql`; returns whether any statement failed.
pub fn run_script(db: &mut Database, sql: &str, out: &mut impl Write) -> io::Result<bool> {
    let mut failed = false;
    for stmt in parser::split_statements(sql) {
        if let Err(e) = run_statement(db, &stmt, out)? {
            writeln!(out, "Error: {}", one_line(&e.to_string()))?;
            failed = true;
        }
    }
    Ok(failed)
}

/// Rows are written as they come, so a runtime error leaves the earlier rows printed.
fn run_statement(db: &mut Database, sql: &str, out: &mut impl Write) -> io::Result<Result<(), executor::Error>> {
    let mut op = match db.prepare(sql) {
        Ok(op) => op,
        Err(e) => return Ok(Err(e)),
    };
    loop {
        match op.next() {
            Ok(Some(row)) => {
                let line: Vec<String> = row.iter().map(|v| v.to_text()).collect();
                writeln!(out, "{}", line.join("|"))?;
            }
            Ok(None) => return Ok(Ok(())),
            Err(e) => return Ok(Err(e)),
        }
    }
}

fn one_line(msg: &str) -> String {
    msg.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> (String, bool) {
        let mut out = Vec::new();
        let failed = run_script(&mut Database::in_memory(), sql, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), failed)
    }

    #[test]
    fn rows_print_in_list_mode() {
        assert_eq!(run("SELECT 1, 'a', NULL, 2.0; SELECT 1e20 AS big;"), ("1|a||2.0\n1.0e+20\n".into(), false));
    }

    #[test]
    fn an_error_takes_one_line_and_the_script_continues() {
        let (out, failed) = run("SELECT 1; SELECT 1 +; SELECT 3;");
        assert!(failed);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], "1");
        assert!(lines[1].starts_with("Error: "));
        assert_eq!(lines[2], "3");
    }

    #[test]
    fn unsupported_statements_say_not_implemented() {
        let (out, failed) = run("CREATE TABLE t(a);");
        assert!(failed);
        assert_eq!(out, "Error: not implemented: CREATE TABLE\n");
    }
}
