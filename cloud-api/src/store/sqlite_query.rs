//! The SQL building blocks of the report queries (`sqlite_reports`): a WHERE builder with
//! positional arguments and keyset windows, the filter → WHERE translation of each report,
//! and small row helpers.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row};
use time::OffsetDateTime;

use super::sqlite::{backend, corrupt, parse_ts, ts};
use super::StoreResult;
use crate::reports::*;

/// A WHERE clause under construction, with its positional arguments.
#[derive(Default)]
pub(super) struct Where {
    pub(super) clauses: Vec<String>,
    pub(super) args: Vec<Value>,
}

impl Where {
    pub(super) fn push(&mut self, sql_with_q: &str, v: impl Into<Value>) {
        self.args.push(v.into());
        self.clauses
            .push(sql_with_q.replace('?', &format!("?{}", self.args.len())));
    }
    pub(super) fn opt_str(&mut self, col: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.push(&format!("{col} = ?"), v.clone());
        }
    }
    /// `from`/`to` days on a fixed-width timestamp column.
    pub(super) fn days(&mut self, col: &str, f: &ReportFilter) {
        if let Some(d) = f.from {
            self.push(&format!("{col} >= ?"), ts(d.midnight().assume_utc()));
        }
        if let Some(d) = f.to {
            if let Some(next) = d.next_day() {
                self.push(&format!("{col} < ?"), ts(next.midnight().assume_utc()));
            }
        }
    }
    pub(super) fn flow(&mut self, prefix: &str, f: &ReportFilter) {
        self.opt_str(&format!("{prefix}flow_id"), &f.flow_id);
        if let Some(v) = f.flow_version {
            self.push(&format!("{prefix}flow_version = ?"), v as i64);
        }
    }
    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
    /// Adds the window: returns the `LIMIT/OFFSET` tail; for keyset windows adds the cursor
    /// condition `(key, id) <op> (?, ?)`.
    pub(super) fn window(&mut self, w: &Window, key: &str, id: &str, op: &str) -> (String, u32) {
        match w {
            Window::Offset { offset, limit } => (format!("LIMIT {limit} OFFSET {offset}"), *limit),
            Window::After { cursor, limit } => {
                if let Some(c) = cursor {
                    self.args.push(c.key.clone().into());
                    self.args.push(c.id.into());
                    let n = self.args.len();
                    self.clauses
                        .push(format!("({key}, {id}) {op} (?{}, ?{n})", n - 1));
                }
                (format!("LIMIT {limit}"), *limit)
            }
        }
    }
}

pub(super) fn query<T>(
    c: &Connection,
    sql: &str,
    args: &[Value],
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), f)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    Ok(rows)
}

pub(super) fn rows_with_cursor<T>(rows: Vec<(T, Cursor)>, limit: u32) -> Rows<T> {
    let next = if rows.len() as u32 >= limit {
        rows.last().map(|(_, c)| c.clone())
    } else {
        None
    };
    Rows {
        rows: rows.into_iter().map(|(r, _)| r).collect(),
        next,
    }
}

pub(super) fn t(s: &str) -> StoreResult<OffsetDateTime> {
    parse_ts(s)
}

/// A text column borrowed from the row (no copy).
pub(super) fn text<'r>(r: &'r Row<'_>, i: usize) -> StoreResult<&'r str> {
    r.get_ref(i).map_err(backend)?.as_str().map_err(corrupt)
}

/// A nullable text column borrowed from the row.
pub(super) fn opt_text<'r>(r: &'r Row<'_>, i: usize) -> StoreResult<Option<&'r str>> {
    r.get_ref(i)
        .map_err(backend)?
        .as_str_or_null()
        .map_err(corrupt)
}

/// Appends a stored timestamp as RFC 3339 the way [`crate::reports::rows::rfc3339`] writes
/// it (fraction without trailing zeros, none if zero). The store writes one fixed shape
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, see `sqlite::ts`), which is rewritten without parsing;
/// anything else goes through the parser.
pub(super) fn stored_ts_as_rfc3339(s: &str, out: &mut String) -> StoreResult<()> {
    let b = s.as_bytes();
    let canonical = b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !canonical {
        out.push_str(&crate::reports::rows::rfc3339(parse_ts(s)?));
        return Ok(());
    }
    let frac = s[20..26].trim_end_matches('0');
    if frac.is_empty() {
        out.push_str(&s[..19]);
    } else {
        out.push_str(&s[..20]);
        out.push_str(frac);
    }
    out.push('Z');
    Ok(())
}

pub(super) fn opt_t(s: Option<String>) -> StoreResult<Option<OffsetDateTime>> {
    s.as_deref().map(parse_ts).transpose()
}

pub(super) fn mass_check_where(f: &ReportFilter, day_col: bool) -> Where {
    let mut w = Where::default();
    if day_col {
        if let Some(d) = f.from {
            w.push("day >= ?", d.to_string());
        }
        if let Some(d) = f.to {
            w.push("day <= ?", d.to_string());
        }
    } else {
        w.days("at", f);
    }
    w.opt_str("pipeline", &f.pipeline);
    w.opt_str("station", &f.station);
    w.opt_str("operator", &f.operator);
    if let Some(within) = f.within {
        w.push("within = ?", within as i64);
    }
    w.flow("", f);
    w
}

pub(super) fn balance_where(f: &ReportFilter, prefix: &str) -> Where {
    let mut w = Where::default();
    w.clauses.push(format!("{prefix}accepted = 1"));
    w.days(&format!("{prefix}batch_created_at"), f);
    w.opt_str(&format!("{prefix}pipeline"), &f.pipeline);
    w.flow(prefix, f);
    w
}

pub(super) fn wip_where(f: &ReportFilter) -> Where {
    let mut w = Where::default();
    // An IN list (not `<> 'completed'`) so the status index is used.
    w.clauses
        .push("b.status IN ('created', 'in_progress', 'flagged', 'blocked')".into());
    w.opt_str("b.pipeline", &f.pipeline);
    w.opt_str("b.current_station", &f.station);
    w.opt_str("b.status", &f.status);
    w
}

/// The default threshold after which a batch counts as stuck at its station.
pub const DEFAULT_STUCK_HOURS: u32 = 24;

pub(super) fn stuck_since(f: &ReportFilter, now: OffsetDateTime) -> String {
    let hours = f.stuck_hours.unwrap_or(DEFAULT_STUCK_HOURS);
    ts(now - time::Duration::hours(hours as i64))
}

pub(super) fn visit_where(f: &ReportFilter) -> Where {
    let mut w = Where::default();
    w.clauses.push("left_at IS NOT NULL".into());
    w.days("left_at", f);
    w.opt_str("pipeline", &f.pipeline);
    w.opt_str("station", &f.station);
    w.flow("", f);
    w
}

pub(super) fn exception_where(f: &ReportFilter) -> Where {
    let mut w = Where::default();
    w.days("raised_at", f);
    w.opt_str("pipeline", &f.pipeline);
    w.opt_str("station", &f.station);
    w.opt_str("raised_by", &f.operator);
    w.opt_str("kind", &f.kind);
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::rows::rfc3339;

    /// The rewrite of stored timestamps gives exactly what parsing and formatting give.
    #[test]
    fn stored_timestamps_rewrite_like_the_formatter() {
        let base = OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("in range");
        for micros in [0, 1, 10, 100, 120_000, 123_456, 500_000, 999_999, 40] {
            let t = base + time::Duration::microseconds(micros);
            let stored = ts(t);
            let mut out = String::new();
            stored_ts_as_rfc3339(&stored, &mut out).expect("canonical");
            assert_eq!(out, rfc3339(t), "{stored}");
        }
        // Other RFC 3339 shapes go through the parser and still come out the same way.
        let mut out = String::new();
        stored_ts_as_rfc3339("2026-05-28T20:26:40.5+00:00", &mut out).expect("parses");
        assert_eq!(out, "2026-05-28T20:26:40.5Z");
        let mut out = String::new();
        assert!(stored_ts_as_rfc3339("2026-05-28 20:26", &mut out).is_err());
        assert!(stored_ts_as_rfc3339("2026-05-28T20:26:40.12345xZ", &mut out).is_err());
    }
}
