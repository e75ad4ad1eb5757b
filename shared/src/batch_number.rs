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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_four_digit_and_longer_numbers() {
        assert_eq!(
            BatchNumber::parse("B-2026-0001"),
            Ok(BatchNumber::new(2026, 1))
        );
        assert_eq!(
            BatchNumber::parse("B-2026-0042"),
            Ok(BatchNumber::new(2026, 42))
        );
        assert_eq!(
            BatchNumber::parse("B-2026-9999"),
            Ok(BatchNumber::new(2026, 9999))
        );
        assert_eq!(
            BatchNumber::parse("B-2026-10000"),
            Ok(BatchNumber::new(2026, 10000))
        );
        assert_eq!(
            BatchNumber::parse("B-2027-4294967295"),
            Ok(BatchNumber::new(2027, u32::MAX))
        );
    }

    #[test]
    fn displays_with_at_least_four_digits() {
        assert_eq!(BatchNumber::new(2026, 1).to_string(), "B-2026-0001");
        assert_eq!(BatchNumber::new(2026, 10000).to_string(), "B-2026-10000");
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "B-2026-",
            "B-2026",
            "B--0001",
            "B-2026-0000",
            "B-2026-001",
            "B-2026-00001",
            "B-2026-010000",
            "B-26-0001",
            "B-02026-0001",
            "b-2026-0001",
            "X-2026-0001",
            "B_2026_0001",
            "B 2026 0001",
            " B-2026-0001",
            "B-2026-0001 ",
            "B-2026- 001",
            "B-2026-+001",
            "B-+026-0001",
            "B--026-0001",
            "B-2026-00x1",
            "B-2026-0001-2",
            "B-２０２６-0001",
            "B-2026-4294967296",
            "B-2026-99999999999999999999",
        ] {
            let err = BatchNumber::parse(bad).expect_err(bad);
            assert_eq!(err, BadBatchNumber(bad.to_string()));
        }
        assert_eq!(
            BadBatchNumber("B-1".into()).to_string(),
            "\"B-1\" is not a batch number like B-2026-0001"
        );
    }

    #[test]
    fn orders_by_year_then_sequence() {
        assert!(BatchNumber::new(2026, 9999) < BatchNumber::new(2026, 10000));
        assert!(BatchNumber::new(2026, 10000) < BatchNumber::new(2027, 1));
    }

    proptest! {
        #[test]
        fn display_parses_back(year in 0i32..=9999, seq in 1u32..) {
            let n = BatchNumber::new(year, seq);
            prop_assert_eq!(BatchNumber::parse(&n.to_string()), Ok(n));
        }

        #[test]
        fn what_parses_displays_as_written(s in "B-[0-9]{4}-[0-9]{4,6}") {
            if let Ok(n) = BatchNumber::parse(&s) {
                prop_assert_eq!(n.to_string(), s);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,16}") {
            let _ = BatchNumber::parse(&s);
        }
    }
}
