//! What a command prints: a table (aligned columns) or a message for people, JSON for scripts.

use serde_json::{Value, json};

/// A command's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The result as JSON (`--json`).
    pub json: Value,
    /// Column names and rows, for people; `None` prints `message` alone.
    pub table: Option<(Vec<String>, Vec<Vec<String>>)>,
    /// A line under the table (or alone).
    pub message: Option<String>,
    /// The command found a problem (diagnose): exit non-zero after printing.
    pub failed: bool,
}

impl Output {
    /// Just a message.
    pub fn message(text: impl Into<String>) -> Self {
        let text = text.into();
        Self { json: json!({ "message": text }), table: None, message: Some(text), failed: false }
    }

    /// A table with its JSON form.
    pub fn table(json: Value, columns: &[&str], rows: Vec<Vec<String>>) -> Self {
        Self {
            json,
            table: Some((columns.iter().map(|c| (*c).to_owned()).collect(), rows)),
            message: None,
            failed: false,
        }
    }

    /// Adds a line under the table.
    pub fn with_message(mut self, text: impl Into<String>) -> Self {
        self.message = Some(text.into());
        self
    }

    /// The text to print.
    pub fn render(&self, as_json: bool) -> String {
        if as_json {
            return serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| self.json.to_string());
        }
        let mut text = String::new();
        if let Some((columns, rows)) = &self.table {
            let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
            for row in rows {
                for (i, cell) in row.iter().enumerate() {
                    if let Some(width) = widths.get_mut(i) {
                        *width = (*width).max(cell.chars().count());
                    }
                }
            }
            let line = |cells: &[String]| {
                let padded: Vec<String> =
                    cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
                padded.join("  ").trim_end().to_owned()
            };
            text.push_str(&line(columns));
            text.push('\n');
            text.push_str(&line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()));
            text.push('\n');
            for row in rows {
                text.push_str(&line(row));
                text.push('\n');
            }
        }
        if let Some(message) = &self.message {
            text.push_str(message);
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns_and_json_is_the_json() {
        let out = Output::table(
            json!([1]),
            &["stream", "version"],
            vec![vec!["acme/order-o-1".into(), "5".into()]],
        )
        .with_message("1 stream");
        assert_eq!(
            out.render(false),
            "stream          version\n--------------  -------\nacme/order-o-1  5\n1 stream\n"
        );
        assert_eq!(out.render(true), "[\n  1\n]");
    }
}
