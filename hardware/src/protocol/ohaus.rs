//! Ohaus (Explorer, Adventurer, Scout, Navigator) interface commands.
//!
//! Commands end in CR LF: `IP` prints immediately, `P` prints (stable or not), `T` tares,
//! `Z` zeroes, `PSN` prints the serial number. A weight line is the value right-aligned in 11
//! characters (sign included), a blank, the unit left-aligned in 5, then `?` when the load is
//! not stable (blank otherwise), a blank and `N` (net) or `G` (gross), CR LF:
//! `     148.30 g      G`. An unknown command answers `ES`. Overload and underload print
//! `O-Ld` and `U-Ld` in the value field.

use std::time::Instant;

use super::{Lines, Protocol};
use crate::profile::{Sample, Scale};

#[derive(Debug, Default)]
pub struct Ohaus {
    lines: Lines,
}

pub fn line(s: &Sample) -> Vec<u8> {
    if s.overload {
        return format!("{:>11}\r\n", "O-Ld").into_bytes();
    }
    if s.underload {
        return format!("{:>11}\r\n", "U-Ld").into_bytes();
    }
    let stab = if s.stable { ' ' } else { '?' };
    let legend = if s.tare.is_zero() { 'G' } else { 'N' };
    format!(
        "{:>11} {:<5}{stab} {legend}\r\n",
        s.net.to_string(),
        s.unit.symbol()
    )
    .into_bytes()
}

impl Protocol for Ohaus {
    fn input(&mut self, bytes: &[u8], scale: &mut Scale, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        for cmd in self.lines.feed(bytes) {
            match cmd.as_slice() {
                b"IP" | b"P" => out.extend(line(&scale.sample(now))),
                b"T" => {
                    if scale.tare(now).is_err() {
                        out.extend_from_slice(b"ES\r\n");
                    }
                }
                b"Z" => {
                    if scale.zero(now).is_err() {
                        out.extend_from_slice(b"ES\r\n");
                    }
                }
                b"PSN" => out.extend(format!("SN:{}\r\n", scale.serial).into_bytes()),
                _ => out.extend_from_slice(b"ES\r\n"),
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
        s.settle = Duration::from_millis(500);
        s.set_load(148.3, t0);
        let mut p = Ohaus::default();
        assert_eq!(
            p.input(b"IP\r\n", &mut s, t0 + Duration::from_secs(1)),
            b"     148.30 g      G\r\n"
        );
        let moving = p.input(b"IP\r\n", &mut s, t0 + Duration::from_millis(600));
        assert_eq!(moving[17], b' ');
        s.set_load(10.0, t0 + Duration::from_secs(2));
        let moving = p.input(b"IP\r\n", &mut s, t0 + Duration::from_millis(2010));
        assert_eq!(moving[17], b'?');
        assert_eq!(p.input(b"HELLO\r\n", &mut s, t0), b"ES\r\n");
    }
}
