//! One open database: the entry point the shell talks to.

use std::path::Path;

use storage::Pager;

use crate::error::Error;
use crate::operators::{build, Operator};

pub struct Database {
    // Unused until tables exist; opening it now makes a bad path fail early, like sqlite3 does.
    #[allow(dead_code)]
    pager: Pager,
}

impl Database {
    pub fn in_memory() -> Database {
        Database { pager: Pager::in_memory() }
    }

    pub fn open(path: &Path) -> Result<Database, Error> {
        Ok(Database { pager: Pager::open(path)? })
    }

    /// Prepare one statement; the caller pulls its rows. Statements without rows yield none.
    pub fn prepare(&mut self, sql: &str) -> Result<Box<dyn Operator>, Error> {
        let stmt = parser::parse_statement(sql)?;
        let plan = planner::plan(&stmt)?;
        Ok(build(&plan))
    }
}
