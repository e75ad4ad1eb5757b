//! Tolerances and the tolerance decision of a mass check.
//!
//! `|actual − expected| ≤ allowed` decides, inclusive at the boundary, computed exactly in
//! milligrams. A relative tolerance is a percentage of the expected mass.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::mass::{Mass, MassUnit};

/// How far a measured mass may lie from the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tolerance {
    /// An absolute mass, e.g. ± 0.5 g.
    Absolute { value: Decimal, unit: MassUnit },
    /// A percentage of the expected mass, e.g. ± 0.2 %.
    Relative { percent: Decimal },
}

/// Why a tolerance is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToleranceError {
    #[error("a tolerance cannot be negative")]
    Negative,
    #[error("a relative tolerance must be at most 100 %")]
    OverHundredPercent,
}

impl Tolerance {
    /// Checks the bounds a usable tolerance must respect.
    pub fn validate(&self) -> Result<(), ToleranceError> {
        match self {
            Tolerance::Absolute { value, .. } if value.is_sign_negative() && !value.is_zero() => {
                Err(ToleranceError::Negative)
            }
            Tolerance::Relative { percent } if percent.is_sign_negative() && !percent.is_zero() => {
                Err(ToleranceError::Negative)
            }
            Tolerance::Relative { percent } if *percent > Decimal::ONE_HUNDRED => {
                Err(ToleranceError::OverHundredPercent)
            }
            _ => Ok(()),
        }
    }

    /// The allowed deviation from `expected`, exact, in milligrams.
    pub fn allowed_milligrams(&self, expected: &Mass) -> Decimal {
        match self {
            Tolerance::Absolute { value, unit } => value.abs() * unit.milligrams(),
            Tolerance::Relative { percent } => {
                expected.to_milligrams() * percent.abs() / Decimal::ONE_HUNDRED
            }
        }
    }

    /// Decides whether `actual` is within this tolerance of `expected`.
    pub fn check(&self, expected: &Mass, actual: &Mass) -> ToleranceCheck {
        let expected_mg = expected.to_milligrams();
        let diff_mg = actual.to_milligrams() - expected_mg;
        let allowed_mg = self.allowed_milligrams(expected);
        let within = diff_mg.abs() <= allowed_mg;
        let unit = expected.unit();
        let variance_pct = if expected_mg.is_zero() {
            None
        } else {
            Some(
                (diff_mg * Decimal::ONE_HUNDRED / expected_mg)
                    .round_dp(4)
                    .normalize(),
            )
        };
        ToleranceCheck {
            unit,
            variance: (diff_mg / unit.milligrams()).normalize(),
            variance_pct,
            allowed: (allowed_mg / unit.milligrams()).normalize(),
            within,
        }
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Absolute { value, unit } => write!(f, "±{value} {unit}"),
            Tolerance::Relative { percent } => write!(f, "±{percent} %"),
        }
    }
}

/// The outcome of a tolerance check, in the unit of the expected mass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToleranceCheck {
    /// Unit of `variance` and `allowed` (the expected mass's unit).
    pub unit: MassUnit,
    /// actual − expected; negative means the metal weighs less than expected.
    pub variance: Decimal,
    /// variance as a percentage of expected, rounded to 4 decimals; `None` when expected is 0.
    pub variance_pct: Option<Decimal>,
    /// The allowed absolute deviation.
    pub allowed: Decimal,
    /// The decision: `|variance| ≤ allowed`, computed exactly in milligrams.
    pub within: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test literal")
    }

    fn g(s: &str) -> Mass {
        Mass::parse(s, "g").expect("test literal")
    }

    #[test]
    fn absolute_boundary_is_inclusive() {
        let t = Tolerance::Absolute {
            value: d("0.5"),
            unit: MassUnit::G,
        };
        assert!(t.check(&g("150"), &g("150.5")).within);
        assert!(t.check(&g("150"), &g("149.5")).within);
        assert!(!t.check(&g("150"), &g("150.5000001")).within);
        assert!(!t.check(&g("150"), &g("149.4999")).within);
    }

    #[test]
    fn seed_example_out_of_tolerance() {
        let t = Tolerance::Absolute {
            value: d("0.5"),
            unit: MassUnit::G,
        };
        let c = t.check(&g("150"), &g("148.3"));
        assert!(!c.within);
        assert_eq!(c.variance, d("-1.7"));
        assert_eq!(c.variance_pct, Some(d("-1.1333")));
    }

    #[test]
    fn relative_boundary_is_inclusive() {
        let t = Tolerance::Relative { percent: d("1") };
        assert!(t.check(&g("200"), &g("202")).within);
        assert!(t.check(&g("200"), &g("198")).within);
        assert!(!t.check(&g("200"), &g("202.0001")).within);
    }

    #[test]
    fn mixed_units_decide_exactly() {
        // 1 ozt = 31.1034768 g exactly; a tolerance of 0 accepts exactly that.
        let t = Tolerance::Absolute {
            value: Decimal::ZERO,
            unit: MassUnit::Mg,
        };
        let expected = Mass::parse("1", "ozt").expect("valid");
        assert!(t.check(&expected, &g("31.1034768")).within);
        assert!(!t.check(&expected, &g("31.1034769")).within);
        // tolerance in mg against kg
        let t = Tolerance::Absolute {
            value: d("100"),
            unit: MassUnit::Mg,
        };
        let kg = Mass::parse("1.0001", "kg").expect("valid");
        assert!(t.check(&Mass::parse("1", "kg").expect("valid"), &kg).within);
    }

    #[test]
    fn validation() {
        assert_eq!(
            Tolerance::Relative { percent: d("101") }.validate(),
            Err(ToleranceError::OverHundredPercent)
        );
        assert_eq!(
            Tolerance::Absolute {
                value: d("-1"),
                unit: MassUnit::G
            }
            .validate(),
            Err(ToleranceError::Negative)
        );
        assert!(Tolerance::Relative { percent: d("0") }.validate().is_ok());
    }

    #[test]
    fn zero_expected_has_no_percentage() {
        let t = Tolerance::Absolute {
            value: d("1"),
            unit: MassUnit::G,
        };
        assert_eq!(t.check(&g("0"), &g("0.5")).variance_pct, None);
    }
}
