//! Stage 7, report: the records of [`crate::pipeline::record`] for people and programs — a
//! terminal table ([`table`], comfy-table) and one JSON document or JSON lines ([`json`]) —
//! plus the output formats, the exit statuses and the terminal width the table is drawn to.

pub mod json;
pub mod table;

pub use json::{write_json, JsonLines};
pub use table::{write_rows, write_table, LiveTable, Row};

use std::io::{self, IsTerminal};

/// Exit statuses: 0 all good, 1 `check` found a violation, 2 an input or a flag was bad.
pub const EXIT_OK: i32 = 0;
pub const EXIT_VIOLATION: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;

pub fn terminal_width() -> Option<u16> {
    if io::stdout().is_terminal() {
        None // comfy-table asks the terminal
    } else {
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).or(Some(200))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}
