use std::fmt;

use parser::ParseError;
use planner::PlanError;

/// Everything that can fail while running one statement; the shell prints it as `Error: <this>`.
#[derive(Debug)]
pub enum Error {
    Parse(ParseError),
    Plan(PlanError),
    /// A runtime error SQLite would also raise (constraint failed, no such table, ...).
    Runtime(String),
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(e) => e.fmt(f),
            Error::Plan(e) => e.fmt(f),
            Error::Runtime(msg) => f.write_str(msg),
            Error::Io(e) => write!(f, "disk I/O error: {e}"),
        }
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Parse(e)
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Plan(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
