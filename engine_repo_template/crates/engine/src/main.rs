//! `engine [DBFILE] [SQL]`: like `sqlite3 [DBFILE] [SQL]` in list mode.
//! No DBFILE (or `:memory:`) means an in-memory database; no SQL argument means read SQL from stdin.
//! Exit status: 0 when every statement succeeded, 1 when any failed or the database could not be opened.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use executor::Database;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") || args.len() > 2 {
        eprintln!("usage: engine [DBFILE] [SQL]   (SQL is read from stdin when not given)");
        return ExitCode::from(if args.len() > 2 { 1 } else { 0 });
    }
    let mut db = match args.first().map(String::as_str) {
        None | Some(":memory:") => Database::in_memory(),
        Some(path) => match Database::open(Path::new(path)) {
            Ok(db) => db,
            Err(e) => {
                println!("Error: unable to open database \"{path}\": {e}");
                return ExitCode::from(1);
            }
        },
    };
    let sql = match args.get(1) {
        Some(sql) => sql.clone(),
        None => {
            let mut buf = String::new();
            if let Err(e) = io::stdin().read_to_string(&mut buf) {
                println!("Error: cannot read SQL from stdin: {e}");
                return ExitCode::from(1);
            }
            buf
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let result = engine::run_script(&mut db, &sql, &mut out).and_then(|failed| out.flush().map(|_| failed));
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        // A closed stdout (e.g. `| head`) is not worth a panic.
        Err(_) => ExitCode::from(1),
    }
}
