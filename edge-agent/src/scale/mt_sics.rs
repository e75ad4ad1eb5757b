//! Mettler-Toledo MT-SICS level 0/1 responses.
//!
//! `S S     148.30 g` (stable), `S D …` (dynamic), `S +`/`S -` (overload/underload),
//! `S I` (cannot execute now), `T S …`/`T I`, `Z A`/`Z I`, `I4 A "serial"`, and the error
//! replies `ES` (syntax), `ET` (transmission), `EL` (logical).

use super::{ascii, number, unit, ParseError, Reply, Weighing};

fn weight(rest: &str, stable: bool, line: &str) -> Result<Weighing, ParseError> {
    let mut words = rest.split_whitespace();
    let (Some(v), Some(u), None) = (words.next(), words.next(), words.next()) else {
        return Err(ParseError::Unexpected(line.to_string()));
    };
    Ok(Weighing {
        net: number(v)?,
        gross: None,
        tare: None,
        unit: unit(u)?,
        stable,
    })
}

pub fn parse(frame: &[u8]) -> Result<Reply, ParseError> {
    let line = ascii(frame)?;
    let t = line.trim();
    match t {
        "ES" => return Err(ParseError::CommandNotUnderstood),
        "ET" => return Err(ParseError::Transmission),
        "EL" => return Err(ParseError::NotExecutable),
        "S I" | "T I" | "Z I" | "SI I" => return Err(ParseError::NotExecutable),
        "S +" | "T +" | "Z +" => return Ok(Reply::Overload),
        "S -" | "T -" | "Z -" => return Ok(Reply::Underload),
        "Z A" => return Ok(Reply::Zeroed),
        _ => {}
    }
    if let Some(rest) = t.strip_prefix("S S ") {
        return weight(rest, true, line).map(Reply::Weight);
    }
    if let Some(rest) = t.strip_prefix("S D ") {
        return weight(rest, false, line).map(Reply::Weight);
    }
    if let Some(rest) = t.strip_prefix("T S ") {
        return weight(rest, true, line).map(|w| Reply::Tared(Some(w)));
    }
    if let Some(rest) = t.strip_prefix("I4 A ") {
        let serial = rest.trim().trim_matches('"');
        if serial.is_empty() || serial.len() > 64 {
            return Err(ParseError::Unexpected(line.to_string()));
        }
        return Ok(Reply::Serial(serial.to_string()));
    }
    Err(ParseError::Unexpected(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("literal")
    }

    #[test]
    fn real_lines() {
        assert_eq!(
            parse(b"S S     148.30 g"),
            Ok(Reply::Weight(Weighing {
                net: d("148.30"),
                gross: None,
                tare: None,
                unit: MassUnit::G,
                stable: true
            }))
        );
        let Ok(Reply::Weight(w)) = parse(b"S D    -12.345 kg") else {
            panic!("dynamic weight")
        };
        assert_eq!(
            (w.net, w.unit, w.stable),
            (d("-12.345"), MassUnit::Kg, false)
        );
        assert_eq!(parse(b"S +"), Ok(Reply::Overload));
        assert_eq!(parse(b"S -"), Ok(Reply::Underload));
        assert_eq!(parse(b"Z A"), Ok(Reply::Zeroed));
        assert!(matches!(
            parse(b"T S     100.00 g"),
            Ok(Reply::Tared(Some(_)))
        ));
        assert_eq!(
            parse(b"I4 A \"B123456789\""),
            Ok(Reply::Serial("B123456789".into()))
        );
    }

    #[test]
    fn error_replies_are_typed() {
        assert_eq!(parse(b"ES"), Err(ParseError::CommandNotUnderstood));
        assert_eq!(parse(b"ET"), Err(ParseError::Transmission));
        assert_eq!(parse(b"EL"), Err(ParseError::NotExecutable));
        assert_eq!(parse(b"S I"), Err(ParseError::NotExecutable));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            parse(b"S S     1x8.30 g"),
            Err(ParseError::BadNumber(_))
        ));
        assert!(matches!(
            parse(b"S S     148.30 lb"),
            Err(ParseError::Unit(_))
        ));
        assert!(matches!(parse(b"S S"), Err(ParseError::Unexpected(_))));
        assert!(matches!(
            parse(b"\xe9\xfcS S 1 g"),
            Err(ParseError::NotAscii(_))
        ));
        assert!(matches!(parse(b""), Err(ParseError::Unexpected(_))));
        assert!(matches!(
            parse(b"ST,+00148.30  g"),
            Err(ParseError::Unexpected(_))
        ));
    }
}
