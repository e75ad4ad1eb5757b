//! Sartorius SBI print lines, 16 or 22 characters.
//!
//! 16: sign, value right-aligned in 8, blank, unit in 3, blank (then CR LF): `+  148.30 g   `.
//! 22: a 6-character identification code first (`N     ` net, `G     ` gross). The unit is
//! blank while the load moves, which is SBI's only motion flag; such a line takes the unit
//! from configuration. `High`/`Low` in the value field are overload/underload.

use metcon_shared::mass::MassUnit;

use super::{ascii, number, unit, ParseError, Reply, Weighing};

pub fn parse(frame: &[u8], fallback_unit: MassUnit) -> Result<Reply, ParseError> {
    let line = ascii(frame)?;
    let (id, body) = match line.len() {
        14 => ("", line),
        20 => line.split_at(6),
        n => return Err(ParseError::Length(n + 2)),
    };
    let id = id.trim();
    if !matches!(id, "" | "N" | "G" | "T" | "Stat") {
        return Err(ParseError::Unexpected(line.to_string()));
    }
    let sign = &body[..1];
    let value = body[1..9].trim();
    let unit_field = body[10..13].trim();
    if !matches!(sign, "+" | "-" | " ") || &body[9..10] != " " || &body[13..14] != " " {
        return Err(ParseError::Unexpected(line.to_string()));
    }
    match value {
        "High" | "H" => return Ok(Reply::Overload),
        "Low" | "L" => return Ok(Reply::Underload),
        _ => {}
    }
    let magnitude = number(value)?;
    let net = if sign == "-" { -magnitude } else { magnitude };
    let (unit, stable) = if unit_field.is_empty() {
        (fallback_unit, false)
    } else {
        (unit(unit_field)?, true)
    };
    Ok(Reply::Weight(Weighing {
        net,
        gross: (id == "G").then_some(net),
        tare: None,
        unit,
        stable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("literal")
    }

    #[test]
    fn real_lines() {
        let Ok(Reply::Weight(w)) = parse(b"+  148.30 g   ", MassUnit::Kg) else {
            panic!("weight")
        };
        assert_eq!((w.net, w.unit, w.stable), (d("148.30"), MassUnit::G, true));
        let Ok(Reply::Weight(w)) = parse(b"N     -    12.5 g   ", MassUnit::Kg) else {
            panic!("22-character weight")
        };
        assert_eq!(w.net, d("-12.5"));
        let Ok(Reply::Weight(w)) = parse(b"+   10.01     ", MassUnit::G) else {
            panic!("moving weight")
        };
        assert!(!w.stable, "no unit means moving");
        assert_eq!(parse(b"+    High     ", MassUnit::G), Ok(Reply::Overload));
        assert_eq!(parse(b"-     Low     ", MassUnit::G), Ok(Reply::Underload));
    }

    #[test]
    fn garbage_and_wrong_lengths() {
        assert_eq!(parse(b"+ 1 g", MassUnit::G), Err(ParseError::Length(7)));
        assert!(parse(b"X     +  148.30 g   ", MassUnit::G).is_err());
        assert!(parse(b"+  14x.30 g   ", MassUnit::G).is_err());
        assert!(parse(b"+  148.30 lb  ", MassUnit::G).is_err());
    }
}
