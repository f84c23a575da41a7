//! Stage 7, report: the records of [`crate::pipeline::record`] for people and programs — a
//! terminal table ([`table`], comfy-table) and one JSON document or JSON lines ([`json`]) —
//! plus the output formats, the exit statuses and the terminal width the table is drawn to.

pub mod json;
pub mod table;

pub use json::{write_json, JsonDocument, JsonLines, LinesThread, JSON_SORT_WINDOW};
pub use table::{write_rows, write_rows_as, write_table, Columns, LiveTable, Row, Width, TABLE_ROWS};

use std::io::{self, IsTerminal};

/// The line under a table that could not show every connection, e.g. `995000 more connections
/// not shown (995000 no-data): -o jsonl or -o json lists every one`.
pub fn left_out_line(left_out: &std::collections::BTreeMap<&'static str, u64>) -> Option<String> {
    let total: u64 = left_out.values().sum();
    (total > 0).then(|| {
        let by: Vec<String> = left_out.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "{total} more connections not shown ({}): -o jsonl or -o json lists every one",
            by.join(", ")
        )
    })
}

/// Exit statuses: 0 all good, 1 `check` found a violation, 2 an input or a flag was bad.
pub const EXIT_OK: i32 = 0;
pub const EXIT_VIOLATION: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;

/// The table's width: `COLUMNS` when it is set (as `ls` reads it), else the terminal's when
/// standard output is one, else unlimited: into a pipe or a file nothing is wrapped or cut.
pub fn terminal_width() -> Width {
    match std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()) {
        Some(c) if c > 0 => Width::Columns(c),
        _ if io::stdout().is_terminal() => Width::Terminal,
        _ => Width::Unlimited,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    /// The table with more columns (cipher, ALPN, first seen) and every line of the evidence.
    Wide,
    Json,
    Jsonl,
}

impl Format {
    /// The name `-o` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Wide => "wide",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }

    /// The table's columns: `-o wide` adds some and shows every line of the evidence.
    pub fn columns(self) -> Columns {
        match self {
            Format::Wide => Columns::Wide,
            _ => Columns::Default,
        }
    }
}
