//! Scale calibration and routine tests, and whether a scale may be used for a mass check.
//!
//! Legal-for-trade and ISO 17025 practice: a scale is calibrated (with a certificate) at an
//! interval, and checked with test weights between calibrations (routine tests). A reading
//! from a scale whose calibration has lapsed, or whose last check failed, must not decide a
//! mass check. [`fitness`] makes that decision from the records alone; the caller supplies the
//! date, so the rule is testable and the same everywhere.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

// Dates travel as `YYYY-MM-DD`.
time::serde::format_description!(pub iso_date, Date, "[year]-[month]-[day]");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationKind {
    /// A full calibration, usually by an accredited service, with a certificate.
    Calibration,
    /// A check with reference weights between calibrations.
    RoutineTest,
}

impl CalibrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CalibrationKind::Calibration => "calibration",
            CalibrationKind::RoutineTest => "routine_test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationOutcome {
    Pass,
    Fail,
}

/// One recorded calibration or routine test of the scale at a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationRecord {
    pub id: String,
    pub device_id: String,
    pub kind: CalibrationKind,
    pub outcome: CalibrationOutcome,
    #[serde(with = "time::serde::rfc3339")]
    pub performed_at: OffsetDateTime,
    /// The last day the result is valid; the next one is due by then.
    #[serde(with = "iso_date")]
    pub next_due: Date,
    /// Serial number of the scale that was calibrated, if known.
    pub scale_serial: Option<String>,
    /// Certificate number, or the reference weights used.
    pub reference: String,
    pub performed_by: String,
    pub notes: Option<String>,
    /// Who entered it in METCON.
    pub recorded_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// Why a scale may not be used for a mass check now. The text is shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ScaleUnfit {
    #[error("the scale has no recorded calibration")]
    NeverCalibrated,
    #[error("the scale's calibration was due on {due}; it is overdue")]
    CalibrationOverdue {
        #[serde(with = "iso_date")]
        due: Date,
    },
    #[error("the scale failed its last calibration on {on}")]
    CalibrationFailed {
        #[serde(with = "iso_date")]
        on: Date,
    },
    #[error("the scale's routine test was due on {due}; it is overdue")]
    RoutineTestOverdue {
        #[serde(with = "iso_date")]
        due: Date,
    },
    #[error("the scale failed its last routine test on {on}")]
    RoutineTestFailed {
        #[serde(with = "iso_date")]
        on: Date,
    },
    #[error(
        "the reading comes from scale {reading}, but the calibration is for scale {calibrated}"
    )]
    SerialMismatch { calibrated: String, reading: String },
}

/// Whether the scale with these `records` may decide a mass check at `now`, for a reading
/// that reports `reading_serial`.
///
/// The latest calibration must have passed and not be past its due date. A routine test
/// recorded after it must also have passed and not be overdue (one recorded before the
/// latest calibration is superseded by it). When both the calibration and the reading name a
/// scale serial, they must match: a swapped scale is not the calibrated one.
pub fn fitness(
    records: &[CalibrationRecord],
    now: OffsetDateTime,
    reading_serial: Option<&str>,
) -> Result<(), ScaleUnfit> {
    let latest = |kind| {
        records
            .iter()
            .filter(|r| r.kind == kind)
            .max_by_key(|r| (r.performed_at, r.recorded_at))
    };
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let cal = latest(CalibrationKind::Calibration).ok_or(ScaleUnfit::NeverCalibrated)?;
    if cal.outcome == CalibrationOutcome::Fail {
        return Err(ScaleUnfit::CalibrationFailed {
            on: cal.performed_at.date(),
        });
    }
    if today > cal.next_due {
        return Err(ScaleUnfit::CalibrationOverdue { due: cal.next_due });
    }
    if let Some(test) = latest(CalibrationKind::RoutineTest) {
        if test.performed_at >= cal.performed_at {
            if test.outcome == CalibrationOutcome::Fail {
                return Err(ScaleUnfit::RoutineTestFailed {
                    on: test.performed_at.date(),
                });
            }
            if today > test.next_due {
                return Err(ScaleUnfit::RoutineTestOverdue { due: test.next_due });
            }
        }
    }
    if let (Some(calibrated), Some(reading)) = (cal.scale_serial.as_deref(), reading_serial) {
        if calibrated.trim() != reading.trim() {
            return Err(ScaleUnfit::SerialMismatch {
                calibrated: calibrated.to_string(),
                reading: reading.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn rec(
        kind: CalibrationKind,
        outcome: CalibrationOutcome,
        at: OffsetDateTime,
        due: Date,
    ) -> CalibrationRecord {
        CalibrationRecord {
            id: format!("{kind:?}-{at}"),
            device_id: "scale-01".into(),
            kind,
            outcome,
            performed_at: at,
            next_due: due,
            scale_serial: Some("B123".into()),
            reference: "DKD-K-12345".into(),
            performed_by: "Mettler service".into(),
            notes: None,
            recorded_by: "admin".into(),
            recorded_at: at,
        }
    }

    use CalibrationKind::{Calibration as Cal, RoutineTest as Test};
    use CalibrationOutcome::{Fail, Pass};

    const NOW: OffsetDateTime = datetime!(2026-06-15 10:00 UTC);

    #[test]
    fn a_scale_needs_a_passed_calibration_within_its_due_date() {
        assert_eq!(fitness(&[], NOW, None), Err(ScaleUnfit::NeverCalibrated));
        let ok = rec(
            Cal,
            Pass,
            datetime!(2026-01-10 9:00 UTC),
            date!(2026 - 06 - 15),
        );
        assert_eq!(
            fitness(std::slice::from_ref(&ok), NOW, Some("B123")),
            Ok(())
        );
        // the due date itself is still valid; the day after is not
        let late = datetime!(2026-06-16 00:00 UTC);
        assert_eq!(
            fitness(std::slice::from_ref(&ok), late, None),
            Err(ScaleUnfit::CalibrationOverdue {
                due: date!(2026 - 06 - 15)
            })
        );
        let failed = rec(
            Cal,
            Fail,
            datetime!(2026-03-01 9:00 UTC),
            date!(2027 - 03 - 01),
        );
        assert_eq!(
            fitness(&[ok, failed], NOW, None),
            Err(ScaleUnfit::CalibrationFailed {
                on: date!(2026 - 03 - 01)
            })
        );
    }

    #[test]
    fn routine_tests_after_the_calibration_count_earlier_ones_do_not() {
        let cal = rec(
            Cal,
            Pass,
            datetime!(2026-05-01 9:00 UTC),
            date!(2027 - 05 - 01),
        );
        let old_fail = rec(
            Test,
            Fail,
            datetime!(2026-04-01 9:00 UTC),
            date!(2026 - 04 - 08),
        );
        assert_eq!(fitness(&[cal.clone(), old_fail], NOW, None), Ok(()));
        let overdue = rec(
            Test,
            Pass,
            datetime!(2026-06-01 9:00 UTC),
            date!(2026 - 06 - 08),
        );
        assert_eq!(
            fitness(&[cal.clone(), overdue.clone()], NOW, None),
            Err(ScaleUnfit::RoutineTestOverdue {
                due: date!(2026 - 06 - 08)
            })
        );
        let fresh = rec(
            Test,
            Pass,
            datetime!(2026-06-14 9:00 UTC),
            date!(2026 - 06 - 21),
        );
        assert_eq!(fitness(&[cal.clone(), overdue, fresh], NOW, None), Ok(()));
        let failed = rec(
            Test,
            Fail,
            datetime!(2026-06-15 8:00 UTC),
            date!(2026 - 06 - 22),
        );
        assert_eq!(
            fitness(&[cal, failed], NOW, None),
            Err(ScaleUnfit::RoutineTestFailed {
                on: date!(2026 - 06 - 15)
            })
        );
    }

    #[test]
    fn a_swapped_scale_is_not_the_calibrated_one() {
        let cal = rec(
            Cal,
            Pass,
            datetime!(2026-05-01 9:00 UTC),
            date!(2027 - 05 - 01),
        );
        assert!(matches!(
            fitness(std::slice::from_ref(&cal), NOW, Some("X999")),
            Err(ScaleUnfit::SerialMismatch { .. })
        ));
        // a protocol without a serial cannot be compared: the calibration decides
        assert_eq!(fitness(&[cal], NOW, None), Ok(()));
    }
}
