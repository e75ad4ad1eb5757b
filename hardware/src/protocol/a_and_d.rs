//! A&D (GF/GX/FX/EK series) standard format.
//!
//! Commands end in CR LF: `Q` (output now), `S` (output when stable), `SI`, `Z`, `T`, `R`
//! (re-zero). A weight is `HH,` + a signed value zero-padded to 9 characters + the unit
//! right-aligned in 3 + CR LF: `ST,+00148.30  g` (15 characters + CR LF). Headers: `ST`
//! stable, `US` unstable, `OL` overload (sign `-` = underload). An unknown command answers
//! `EC,E01`, a refused one `EC,E11` (stability error). Tare/zero acknowledge with ACK (06h).

use std::time::Instant;

use super::{Lines, Protocol};
use crate::profile::{Sample, Scale};

const ACK: &[u8] = b"\x06";

#[derive(Debug, Default)]
pub struct AAndD {
    lines: Lines,
}

pub fn line(s: &Sample) -> Vec<u8> {
    if s.overload {
        return b"OL,+9999999E+19\r\n".to_vec();
    }
    if s.underload {
        return b"OL,-9999999E+19\r\n".to_vec();
    }
    let header = if s.stable { "ST" } else { "US" };
    let sign = if s.net.is_sign_negative() && !s.net.is_zero() {
        '-'
    } else {
        '+'
    };
    format!(
        "{header},{sign}{:0>8}{:>3}\r\n",
        s.net.abs().to_string(),
        s.unit.symbol()
    )
    .into_bytes()
}

impl Protocol for AAndD {
    fn input(&mut self, bytes: &[u8], scale: &mut Scale, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        for cmd in self.lines.feed(bytes) {
            match cmd.as_slice() {
                b"Q" | b"SI" => out.extend(line(&scale.sample(now))),
                b"S" => {
                    let s = scale.sample(now);
                    if s.stable {
                        out.extend(line(&s));
                    } else {
                        out.extend_from_slice(b"EC,E11\r\n");
                    }
                }
                b"T" => match scale.tare(now) {
                    Ok(_) => out.extend_from_slice(ACK),
                    Err(_) => out.extend_from_slice(b"EC,E11\r\n"),
                },
                b"Z" | b"R" => match scale.zero(now) {
                    Ok(()) => out.extend_from_slice(ACK),
                    Err(_) => out.extend_from_slice(b"EC,E11\r\n"),
                },
                _ => out.extend_from_slice(b"EC,E01\r\n"),
            }
        }
        out
    }

    fn tick(&mut self, _scale: &mut Scale, _now: Instant) -> Vec<u8> {
        Vec::new()
    }

    fn print(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8> {
        line(&scale.sample(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;
    use std::time::Duration;

    #[test]
    fn framing_is_exact() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(148.3, t0);
        let t = t0 + Duration::from_secs(1);
        let mut p = AAndD::default();
        let l = p.input(b"Q\r\n", &mut s, t);
        assert_eq!(l, b"ST,+00148.30  g\r\n");
        assert_eq!(l.len(), 17);
        assert_eq!(p.input(b"X\r\n", &mut s, t), b"EC,E01\r\n");
        s.forced_overload = true;
        assert_eq!(p.input(b"Q\r\n", &mut s, t), b"OL,+9999999E+19\r\n");
    }
}
