//! Ohaus print lines: `     148.30 g      G`.
//!
//! The value (sign included) right-aligned in 11, the unit, then `?` when the load is not
//! stable and a legend (`G` gross, `N` net, `T` tare). `ES` answers an unknown command;
//! `O-Ld`/`U-Ld` are overload/underload; `SN:…` answers `PSN`.

use super::{ascii, number, unit, ParseError, Reply, Weighing};

pub fn parse(frame: &[u8]) -> Result<Reply, ParseError> {
    let line = ascii(frame)?;
    let t = line.trim();
    match t {
        "ES" => return Err(ParseError::CommandNotUnderstood),
        "O-Ld" | "OL" => return Ok(Reply::Overload),
        "U-Ld" | "UL" => return Ok(Reply::Underload),
        _ => {}
    }
    if let Some(sn) = t.strip_prefix("SN:") {
        let sn = sn.trim();
        if sn.is_empty() || sn.len() > 64 {
            return Err(ParseError::Unexpected(line.to_string()));
        }
        return Ok(Reply::Serial(sn.to_string()));
    }
    let mut words = t.split_whitespace();
    let (Some(v), Some(u)) = (words.next(), words.next()) else {
        return Err(ParseError::Unexpected(line.to_string()));
    };
    let mut stable = true;
    let mut legend = None;
    for w in words {
        match w {
            "?" => stable = false,
            "G" | "N" | "T" if legend.is_none() => legend = Some(w),
            _ => return Err(ParseError::Unexpected(line.to_string())),
        }
    }
    let net = number(v)?;
    Ok(Reply::Weight(Weighing {
        net,
        gross: (legend == Some("G")).then_some(net),
        tare: None,
        unit: unit(u)?,
        stable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_lines() {
        let Ok(Reply::Weight(w)) = parse(b"     148.30 g      G") else {
            panic!("weight")
        };
        assert!(w.stable);
        assert_eq!(w.net.to_string(), "148.30");
        let Ok(Reply::Weight(w)) = parse(b"     -12.30 g    ? N") else {
            panic!("weight")
        };
        assert!(!w.stable);
        assert_eq!(w.net.to_string(), "-12.30");
        assert_eq!(parse(b"       O-Ld"), Ok(Reply::Overload));
        assert_eq!(
            parse(b"SN:B123456789"),
            Ok(Reply::Serial("B123456789".into()))
        );
    }

    #[test]
    fn errors_and_garbage() {
        assert_eq!(parse(b"ES"), Err(ParseError::CommandNotUnderstood));
        assert!(parse(b"     148.30").is_err());
        assert!(parse(b"     148.30 g   x").is_err());
        assert!(parse(b"     1-48.30 g").is_err());
        assert!(parse(b"ST,+00148.30  g").is_err());
    }
}
