//! A&D standard format: `ST,+00148.30  g`.
//!
//! Header `ST` (stable), `US` (unstable), `QT` (count, not a weight), `OL` (out of range;
//! sign `-` = underload), a comma, the signed value zero-padded to 9 characters, the unit
//! right-aligned in 3. `EC,E01` is an unknown command, `EC,E11` a stability error, other
//! `EC,Exx` codes are passed on.

use super::{ascii, number, unit, ParseError, Reply, Weighing};

pub fn parse(frame: &[u8]) -> Result<Reply, ParseError> {
    let line = ascii(frame)?;
    let Some((header, data)) = line.split_once(',') else {
        return Err(ParseError::Unexpected(line.to_string()));
    };
    match header {
        "EC" => {
            return Err(match data.trim() {
                "E01" => ParseError::CommandNotUnderstood,
                "E00" => ParseError::Transmission,
                "E11" | "E02" => ParseError::NotExecutable,
                code => ParseError::ScaleError(format!("A&D {code}")),
            })
        }
        "OL" => {
            return Ok(if data.starts_with('-') {
                Reply::Underload
            } else {
                Reply::Overload
            })
        }
        "ST" | "US" => {}
        _ => return Err(ParseError::Unexpected(line.to_string())),
    }
    if data.len() != 12 {
        return Err(ParseError::Length(line.len() + 2));
    }
    let (value, unit_field) = data.split_at(9);
    Ok(Reply::Weight(Weighing {
        net: number(value)?,
        gross: None,
        tare: None,
        unit: unit(unit_field)?,
        stable: header == "ST",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;
    use rust_decimal::Decimal;

    #[test]
    fn real_lines() {
        let Ok(Reply::Weight(w)) = parse(b"ST,+00148.30  g") else {
            panic!("weight")
        };
        assert_eq!(w.net, Decimal::from_str_exact("148.30").expect("literal"));
        assert_eq!(w.net.to_string(), "148.30");
        assert!(w.stable);
        let Ok(Reply::Weight(w)) = parse(b"US,-0012.345 kg") else {
            panic!("weight")
        };
        assert_eq!((w.unit, w.stable), (MassUnit::Kg, false));
        assert_eq!(parse(b"OL,+9999999E+19"), Ok(Reply::Overload));
        assert_eq!(parse(b"OL,-9999999E+19"), Ok(Reply::Underload));
    }

    #[test]
    fn errors_and_garbage() {
        assert_eq!(parse(b"EC,E01"), Err(ParseError::CommandNotUnderstood));
        assert_eq!(parse(b"EC,E11"), Err(ParseError::NotExecutable));
        assert!(matches!(parse(b"EC,E20"), Err(ParseError::ScaleError(_))));
        assert!(parse(b"QT,+0000012 PC").is_err());
        assert!(parse(b"ST,+00148.30").is_err());
        assert!(parse(b"ST,+001x8.30  g").is_err());
        assert!(parse(b"S S     148.30 g").is_err());
    }
}
