//! Generic print lines: one line per Print key press, in the loose shape most scales use.
//!
//! Optional label words (`NET`, `N`, `G`, `Gross:`), a signed number (the sign may stand
//! apart), the unit (may be glued to the number: `148.30g`), and optionally `?` or `M`
//! (motion). `OVERLOAD`/`UNDERLOAD` lines are typed. Every line is a [`Reply::Printed`]:
//! the operator asked for it.

use super::{ascii, number, unit, ParseError, Reply, Weighing};

pub fn parse(frame: &[u8]) -> Result<Reply, ParseError> {
    let line = ascii(frame)?;
    let t = line.trim();
    match t.to_ascii_uppercase().as_str() {
        "OVERLOAD" | "OL" | "O-LD" => return Ok(Reply::Overload),
        "UNDERLOAD" | "UL" | "U-LD" => return Ok(Reply::Underload),
        _ => {}
    }
    let mut words = t.split_whitespace().peekable();
    // label words: anything before the first word that starts like a number
    let starts_number =
        |w: &str| w.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '.');
    while words.peek().is_some_and(|w| !starts_number(w)) {
        let label = words.next().unwrap_or_default();
        if label.len() > 8
            || !label
                .trim_end_matches(':')
                .chars()
                .all(|c| c.is_ascii_alphabetic())
        {
            return Err(ParseError::Unexpected(line.to_string()));
        }
    }
    let mut num = words
        .next()
        .ok_or_else(|| ParseError::Unexpected(line.to_string()))?
        .to_string();
    if num == "+" || num == "-" {
        let rest = words
            .next()
            .ok_or_else(|| ParseError::Unexpected(line.to_string()))?;
        num.push_str(rest);
    }
    // unit glued to the number?
    let split = num
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(num.len());
    let (value, glued) = num.split_at(split);
    let unit_word = if glued.is_empty() {
        words
            .next()
            .ok_or_else(|| ParseError::Unexpected(line.to_string()))?
            .to_string()
    } else {
        glued.to_string()
    };
    let mut stable = true;
    for w in words {
        match w {
            "?" | "M" => stable = false,
            _ => return Err(ParseError::Unexpected(line.to_string())),
        }
    }
    Ok(Reply::Printed(Weighing {
        net: number(value)?,
        gross: None,
        tare: None,
        unit: unit(&unit_word)?,
        stable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;

    fn net(line: &[u8]) -> String {
        match parse(line) {
            Ok(Reply::Printed(w)) => format!("{} {}", w.net, w.unit),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn real_lines() {
        assert_eq!(net(b"NET     148.30 g"), "148.30 g");
        assert_eq!(net(b"N  +  148.30g"), "148.30 g");
        assert_eq!(net(b"Gross: -0.125 kg"), "-0.125 kg");
        assert_eq!(net(b"   12.5 ct"), "12.5 ct");
        let Ok(Reply::Printed(w)) = parse(b"NET     148.30 g ?") else {
            panic!("printed")
        };
        assert!(!w.stable);
        assert_eq!(w.unit, MassUnit::G);
        assert_eq!(parse(b"OVERLOAD"), Ok(Reply::Overload));
    }

    #[test]
    fn garbage() {
        for bad in [
            &b""[..],
            b"NET",
            b"NET 148.30",
            b"NET 148.30 lb",
            b"hello world 1 g x",
            b"1.2.3 g",
            b"\x80\x81",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
