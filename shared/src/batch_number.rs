//! Batch numbers: `B-YYYY-NNNN`, counted per pipeline and year.
//!
//! The number is at least four digits and grows past 9999 (`B-2026-10000`) rather than wrap.

use std::fmt;

/// A parsed batch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchNumber {
    pub year: i32,
    pub seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a batch number like B-2026-0001")]
pub struct BadBatchNumber(pub String);

impl BatchNumber {
    pub fn new(year: i32, seq: u32) -> BatchNumber {
        BatchNumber { year, seq }
    }

    pub fn parse(s: &str) -> Result<BatchNumber, BadBatchNumber> {
        let bad = || BadBatchNumber(s.to_string());
        let rest = s.strip_prefix("B-").ok_or_else(bad)?;
        let (year, seq) = rest.split_once('-').ok_or_else(bad)?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || !digits(year) || seq.len() < 4 || !digits(seq) {
            return Err(bad());
        }
        // Four digits at least; longer only when the number needs it (no extra zero padding).
        if seq.len() > 4 && seq.starts_with('0') {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let seq: u32 = seq.parse().map_err(|_| bad())?;
        if seq == 0 {
            return Err(bad());
        }
        Ok(BatchNumber { year, seq })
    }
}

impl fmt::Display for BatchNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B-{:04}-{:04}", self.year, self.seq)
    }
}
