//! SQL text to AST. The engine splits a script into statements, then parses each on its own, so a
//! syntax error costs one statement, as in the sqlite3 shell.

pub mod ast;
pub mod lexer;
pub mod parse;
pub mod split;

pub use ast::*;
pub use parse::{parse_statement, ParseError};
pub use split::split_statements;
