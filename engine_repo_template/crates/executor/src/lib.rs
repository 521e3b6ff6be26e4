//! Volcano-style execution: every plan node becomes an `Operator` whose `next` pulls one row at a time
//! from its inputs, so rows reach the output as soon as they exist and a runtime error stops the stream
//! after the rows already produced (what sqlite3 prints too).

pub mod database;
pub mod error;
pub mod eval;
pub mod operators;

pub use database::Database;
pub use error::Error;
pub use operators::{build, Operator, Row};
