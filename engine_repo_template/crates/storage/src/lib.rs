//! Storage: the value model shared by every layer, and the pager that owns the database file.
//!
//! Roadmap (see DESIGN.md): record encoding, B+tree tables and indexes over the pager, a write-ahead
//! log and crash recovery. Nothing above this crate touches the file directly.

pub mod pager;
pub mod value;

pub use pager::{Pager, PageId, PAGE_SIZE};
pub use value::Value;
