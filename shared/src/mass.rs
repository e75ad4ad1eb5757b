//! Masses as exact decimals with a unit.
//!
//! Every unit METCON supports is an exact multiple of 0.0001 mg (1 ozt = 31.1034768 g by
//! definition, 1 ct = 200 mg), so converting any mass to milligrams is an exact decimal
//! multiplication. Comparisons and tolerance decisions therefore happen in milligrams and are
//! never rounded; only a conversion *into* a larger unit (for display) can need rounding, and
//! then it is rounded to the 28 significant digits of `Decimal`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A unit of mass used on refinery scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MassUnit {
    /// milligram
    Mg,
    /// gram
    G,
    /// kilogram
    Kg,
    /// troy ounce, 31.1034768 g exactly
    Ozt,
    /// metric carat, 200 mg exactly
    Ct,
}

impl MassUnit {
    pub const ALL: [MassUnit; 5] = [
        MassUnit::Mg,
        MassUnit::G,
        MassUnit::Kg,
        MassUnit::Ozt,
        MassUnit::Ct,
    ];

    /// Milligrams in one of this unit, exact.
    pub fn milligrams(self) -> Decimal {
        match self {
            MassUnit::Mg => Decimal::ONE,
            MassUnit::G => Decimal::from(1000),
            MassUnit::Kg => Decimal::from(1_000_000),
            // 31.1034768 g = 31103.4768 mg
            MassUnit::Ozt => Decimal::new(311_034_768, 4),
            MassUnit::Ct => Decimal::from(200),
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            MassUnit::Mg => "mg",
            MassUnit::G => "g",
            MassUnit::Kg => "kg",
            MassUnit::Ozt => "ozt",
            MassUnit::Ct => "ct",
        }
    }
}

impl fmt::Display for MassUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A unit string that is not one METCON knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mass unit {0:?}; use one of mg, g, kg, ozt, ct")]
pub struct UnknownUnit(pub String);

impl FromStr for MassUnit {
    type Err = UnknownUnit;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mg" => Ok(MassUnit::Mg),
            "g" => Ok(MassUnit::G),
            "kg" => Ok(MassUnit::Kg),
            "ozt" | "oz t" | "t oz" | "troy_ounce" => Ok(MassUnit::Ozt),
            "ct" | "carat" => Ok(MassUnit::Ct),
            _ => Err(UnknownUnit(s.to_string())),
        }
    }
}

/// Why a value cannot be a mass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MassError {
    #[error("a mass cannot be negative (got {0})")]
    Negative(Decimal),
    #[error("{0:?} is not a decimal number")]
    NotANumber(String),
    #[error(transparent)]
    Unit(#[from] UnknownUnit),
}

/// A non-negative mass: an exact decimal value and its unit.
///
/// Equality is structural (`1000 g` != `1 kg`); use [`Mass::same_quantity`] or compare
/// [`Mass::to_milligrams`] to compare quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MassRepr", into = "MassRepr")]
pub struct Mass {
    value: Decimal,
    unit: MassUnit,
}

/// Wire form: `{"value": "148.3", "unit": "g"}`; the value may also be a JSON number.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MassRepr {
    value: Decimal,
    unit: MassUnit,
}

impl TryFrom<MassRepr> for Mass {
    type Error = MassError;
    fn try_from(r: MassRepr) -> Result<Self, Self::Error> {
        Mass::new(r.value, r.unit)
    }
}

impl From<Mass> for MassRepr {
    fn from(m: Mass) -> Self {
        MassRepr {
            value: m.value,
            unit: m.unit,
        }
    }
}

impl Mass {
    pub fn new(value: Decimal, unit: MassUnit) -> Result<Mass, MassError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MassError::Negative(value));
        }
        Ok(Mass {
            value: value.normalize_keep_scale(),
            unit,
        })
    }

    /// Parses a decimal string and a unit string, e.g. `("148.30", "g")`.
    pub fn parse(value: &str, unit: &str) -> Result<Mass, MassError> {
        let v = Decimal::from_str_exact(value.trim())
            .map_err(|_| MassError::NotANumber(value.to_string()))?;
        Mass::new(v, unit.parse()?)
    }

    pub fn value(&self) -> Decimal {
        self.value
    }

    pub fn unit(&self) -> MassUnit {
        self.unit
    }

    /// The exact quantity in milligrams.
    pub fn to_milligrams(&self) -> Decimal {
        self.value * self.unit.milligrams()
    }

    /// The same quantity in `unit`; exact unless the target unit does not divide it, in which
    /// case it is rounded to `Decimal`'s 28 significant digits.
    pub fn to_unit(&self, unit: MassUnit) -> Mass {
        if unit == self.unit {
            return *self;
        }
        Mass {
            value: (self.to_milligrams() / unit.milligrams()).normalize(),
            unit,
        }
    }

    /// Whether two masses are the same quantity, whatever their units.
    pub fn same_quantity(&self, other: &Mass) -> bool {
        self.to_milligrams() == other.to_milligrams()
    }
}

impl fmt::Display for Mass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.unit)
    }
}

/// `value` without trailing zeros beyond its written scale is kept as written: `148.30 g`
/// stays `148.30 g`, because the number of decimals says what the scale displayed.
trait KeepScale {
    fn normalize_keep_scale(self) -> Self;
}

impl KeepScale for Decimal {
    fn normalize_keep_scale(self) -> Self {
        if self.is_zero() {
            // -0 and 0 are the same mass
            Decimal::new(0, self.scale())
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test literal")
    }

    #[test]
    fn troy_ounce_is_exact() {
        let m = Mass::new(Decimal::ONE, MassUnit::Ozt).expect("valid");
        assert_eq!(m.to_unit(MassUnit::G).value(), d("31.1034768"));
        assert_eq!(m.to_milligrams(), d("31103.4768"));
    }

    #[test]
    fn carat_is_200_mg() {
        let m = Mass::parse("5", "ct").expect("valid");
        assert_eq!(m.to_unit(MassUnit::G).value(), Decimal::ONE);
    }

    #[test]
    fn kg_to_g_round_trip_is_exact() {
        let m = Mass::parse("12.3456789", "kg").expect("valid");
        let back = m.to_unit(MassUnit::G).to_unit(MassUnit::Kg);
        assert!(back.same_quantity(&m));
        assert_eq!(m.to_unit(MassUnit::Mg).value(), d("12345678.9"));
    }

    #[test]
    fn negative_mass_is_refused() {
        assert!(matches!(
            Mass::parse("-1", "g"),
            Err(MassError::Negative(_))
        ));
        assert!(Mass::parse("-0", "g").is_ok());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            Mass::parse("1e3x", "g"),
            Err(MassError::NotANumber(_))
        ));
        assert!(matches!(Mass::parse("1", "lb"), Err(MassError::Unit(_))));
    }

    #[test]
    fn json_keeps_the_written_scale_and_value_exact() {
        let m: Mass = serde_json::from_str(r#"{"value":"148.30","unit":"g"}"#).expect("valid");
        assert_eq!(m.value().to_string(), "148.30");
        let back = serde_json::to_string(&m).expect("serialize");
        assert_eq!(back, r#"{"value":"148.30","unit":"g"}"#);
        let from_number: Mass =
            serde_json::from_str(r#"{"value":148.3,"unit":"g"}"#).expect("valid");
        assert_eq!(from_number.value(), d("148.3"));
        assert!(serde_json::from_str::<Mass>(r#"{"value":"-2","unit":"g"}"#).is_err());
    }
}
