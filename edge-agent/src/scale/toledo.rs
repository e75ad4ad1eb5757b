//! Mettler-Toledo continuous output frames (18 bytes, see the simulator's notes).
//!
//! STX, status words A/B/C, 6 weight digits, 6 tare digits, CR, checksum. SWA bits 0–2 give
//! the decimal point (0: ×100, 1: ×10, 2: ×1, 3–7: 1–5 decimals); SWB: net (0), negative
//! (1), out of range (2), motion (3), kg (4); SWC bits 0–2 the unit (0: lb/kg per SWB,
//! 1: g, 4: troy ounce) and bit 3 the print request, which makes the frame a
//! [`Reply::Printed`].

use metcon_shared::mass::MassUnit;
use rust_decimal::Decimal;

use super::{escape, ParseError, Reply, Weighing};

const STX: u8 = 0x02;
const LEN: usize = 18;

fn digits(field: &[u8], frame: &[u8]) -> Result<i64, ParseError> {
    let mut v = 0i64;
    for &b in field {
        if !b.is_ascii_digit() {
            // blanks are allowed as leading zeros by some indicators
            if b == b' ' {
                v *= 10;
                continue;
            }
            return Err(ParseError::BadNumber(escape(frame)));
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Ok(v)
}

pub fn parse(frame: &[u8]) -> Result<Reply, ParseError> {
    if frame.len() != LEN {
        return Err(ParseError::Length(frame.len()));
    }
    if frame[0] != STX || frame[16] != b'\r' {
        return Err(ParseError::Unexpected(escape(frame)));
    }
    let sum: u32 = frame.iter().map(|&b| u32::from(b)).sum();
    if sum & 0x7f != 0 {
        return Err(ParseError::Checksum);
    }
    let (swa, swb, swc) = (frame[1], frame[2], frame[3]);
    if swa & 0x20 == 0 || swb & 0x20 == 0 || swc & 0x20 == 0 {
        return Err(ParseError::Unexpected(escape(frame)));
    }
    let net_flag = swb & 0x01 != 0;
    let negative = swb & 0x02 != 0;
    if swb & 0x04 != 0 {
        return Ok(if negative {
            Reply::Underload
        } else {
            Reply::Overload
        });
    }
    let motion = swb & 0x08 != 0;
    let unit = match swc & 0x07 {
        0 if swb & 0x10 != 0 => MassUnit::Kg,
        0 => return Err(ParseError::Unit("lb".into())),
        1 => MassUnit::G,
        4 => MassUnit::Ozt,
        other => return Err(ParseError::Unit(format!("toledo unit code {other}"))),
    };
    let print = swc & 0x08 != 0;
    let value = |raw: i64| -> Decimal {
        match swa & 0x07 {
            0 => Decimal::new(raw * 100, 0),
            1 => Decimal::new(raw * 10, 0),
            dp => Decimal::new(raw, u32::from(dp - 2)),
        }
    };
    let shown = value(digits(&frame[4..10], frame)?);
    let shown = if negative { -shown } else { shown };
    let tare = value(digits(&frame[10..16], frame)?);
    let w = if net_flag {
        Weighing {
            net: shown,
            gross: Some(shown + tare),
            tare: Some(tare),
            unit,
            stable: !motion,
        }
    } else {
        Weighing {
            net: shown,
            gross: Some(shown),
            tare: None,
            unit,
            stable: !motion,
        }
    };
    Ok(if print {
        Reply::Printed(w)
    } else {
        Reply::Weight(w)
    })
}

#[cfg(test)]
pub(crate) fn frame(swa: u8, swb: u8, swc: u8, weight: &[u8; 6], tare: &[u8; 6]) -> Vec<u8> {
    let mut f = vec![STX, swa, swb, swc];
    f.extend_from_slice(weight);
    f.extend_from_slice(tare);
    f.push(b'\r');
    let sum: u32 = f.iter().map(|&b| u32::from(b)).sum();
    f.push(((0x80 - (sum & 0x7f)) & 0x7f) as u8);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_frames() {
        let f = frame(0x2c, 0x20, 0x21, b"014830", b"000000");
        let Ok(Reply::Weight(w)) = parse(&f) else {
            panic!("weight")
        };
        assert_eq!(w.net.to_string(), "148.30");
        assert!(w.stable);
        assert_eq!(w.unit, MassUnit::G);
        // net, negative, motion, kg, print request, X.XXX
        let f = frame(
            0x2d,
            0x20 | 0x01 | 0x02 | 0x08 | 0x10,
            0x20 | 0x08,
            b"001250",
            b"002000",
        );
        let Ok(Reply::Printed(w)) = parse(&f) else {
            panic!("printed")
        };
        assert_eq!(w.net.to_string(), "-1.250");
        assert_eq!(w.tare.map(|t| t.to_string()), Some("2.000".into()));
        assert_eq!(w.gross.map(|g| g.to_string()), Some("0.750".into()));
        assert!(!w.stable);
        assert_eq!(w.unit, MassUnit::Kg);
        let over = frame(0x2c, 0x24, 0x21, b"999999", b"000000");
        assert_eq!(parse(&over), Ok(Reply::Overload));
    }

    #[test]
    fn bad_checksum_and_garbage() {
        let mut f = frame(0x2c, 0x20, 0x21, b"014830", b"000000");
        f[6] = b'9';
        assert_eq!(parse(&f), Err(ParseError::Checksum));
        assert_eq!(parse(b"\x02abc"), Err(ParseError::Length(4)));
        let lb = frame(0x2c, 0x20, 0x20, b"014830", b"000000");
        assert!(matches!(parse(&lb), Err(ParseError::Unit(_))));
        let junk = frame(0x2c, 0x20, 0x21, b"01x830", b"000000");
        assert!(matches!(parse(&junk), Err(ParseError::BadNumber(_))));
    }
}
