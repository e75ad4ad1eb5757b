//! CSV for exports: RFC 4180 (comma, CRLF, fields with `"`, `,`, CR or LF quoted with `"`
//! doubled), UTF-8, and formula injection neutralised: a cell that starts with `=`, `+`, `-`,
//! `@`, a tab or a carriage return gets a leading `'` so that a spreadsheet shows it as
//! text instead of evaluating it (OWASP's CSV injection advice).
//!
//! One exception, on purpose: a cell that is exactly a decimal number (`-1.7`, `-0.0123`) is
//! left as it is. It cannot be a formula, and analysts need negative variances to stay
//! numbers in their spreadsheets. `-1+2`, `-A1` or `- 1` are not plain numbers and are guarded.

/// Appends one cell, escaped, to `out`.
pub fn push_cell(out: &mut String, cell: &str) {
    let guard = matches!(
        cell.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    ) && !is_plain_negative_number(cell);
    // A byte scan: all four are ASCII, and it is the export's innermost loop.
    let quote = cell
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    if quote {
        for ch in cell.chars() {
            if ch == '"' {
                out.push('"');
            }
            out.push(ch);
        }
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

/// `-` followed by digits with at most one decimal point, nothing else.
fn is_plain_negative_number(cell: &str) -> bool {
    let Some(rest) = cell.strip_prefix('-') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Appends one record (cells joined by commas, ended by CRLF) to `out`.
pub fn push_record<S: AsRef<str>>(out: &mut String, cells: &[S]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_cell(out, c.as_ref());
    }
    out.push_str("\r\n");
}

/// CSV records built cell by cell, straight from borrowed text: the export's hot path writes
/// each database row into this buffer without allocating per cell.
#[derive(Debug, Default)]
pub struct CsvWriter {
    out: String,
    in_row: bool,
}

impl CsvWriter {
    pub fn with_capacity(bytes: usize) -> CsvWriter {
        CsvWriter {
            out: String::with_capacity(bytes),
            in_row: false,
        }
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

impl super::rows::CellSink for CsvWriter {
    fn cell(&mut self, cell: &str) {
        if self.in_row {
            self.out.push(',');
        }
        self.in_row = true;
        push_cell(&mut self.out, cell);
    }

    fn int(&mut self, n: i64) {
        use std::fmt::Write;
        if self.in_row {
            self.out.push(',');
        }
        self.in_row = true;
        // A plain integer never needs quoting or the formula guard (a minus sign followed by
        // digits is a number).
        let _ = write!(self.out, "{n}");
    }

    fn end_row(&mut self) {
        self.out.push_str("\r\n");
        self.in_row = false;
    }
}

/// One escaped cell as a string (for tests and small uses).
pub fn escape(cell: &str) -> String {
    let mut s = String::new();
    push_cell(&mut s, cell);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cells_are_unchanged() {
        assert_eq!(escape("B-2026-0001"), "B-2026-0001");
        assert_eq!(escape("148.3"), "148.3");
        assert_eq!(escape(""), "");
        assert_eq!(escape("Zürich ‰"), "Zürich ‰");
    }

    #[test]
    fn formula_starts_get_a_leading_quote() {
        assert_eq!(escape("=1+2"), "'=1+2");
        assert_eq!(escape("+41 44"), "'+41 44");
        assert_eq!(escape("-1+2"), "'-1+2");
        assert_eq!(escape("-A1"), "'-A1");
        assert_eq!(escape("- 1"), "'- 1");
        assert_eq!(escape("-1."), "'-1.");
        assert_eq!(escape("-"), "'-");
        assert_eq!(escape("@SUM(A1:A9)"), "'@SUM(A1:A9)");
        assert_eq!(escape("\tcmd"), "'\tcmd");
        // A leading CR also needs quoting (RFC 4180), and the guard goes inside the quotes.
        assert_eq!(escape("\r=cmd"), "\"'\r=cmd\"");
        // Only the first character matters.
        assert_eq!(escape("a=b"), "a=b");
    }

    #[test]
    fn plain_negative_numbers_stay_numbers() {
        assert_eq!(escape("-1.7"), "-1.7");
        assert_eq!(escape("-0.0123"), "-0.0123");
        assert_eq!(escape("-12"), "-12");
    }

    #[test]
    fn separators_and_quotes_are_quoted() {
        assert_eq!(escape("a,b"), "\"a,b\"");
        assert_eq!(escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("two\nlines"), "\"two\nlines\"");
        assert_eq!(
            escape("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
    }

    #[test]
    fn the_writer_matches_push_record() {
        use crate::reports::rows::CellSink;
        let mut w = CsvWriter::default();
        for c in ["a", "b,c", "-1", "=x"] {
            w.cell(c);
        }
        w.int(-42);
        w.end_row();
        w.int(7);
        w.cell("");
        w.end_row();
        let mut s = String::new();
        push_record(&mut s, &["a", "b,c", "-1", "=x", "-42"]);
        push_record(&mut s, &["7", ""]);
        assert_eq!(w.into_string(), s);
    }

    #[test]
    fn records_end_with_crlf() {
        let mut s = String::new();
        push_record(&mut s, &["a", "b,c", "-1", "=x"]);
        assert_eq!(s, "a,\"b,c\",-1,'=x\r\n");
    }
}
