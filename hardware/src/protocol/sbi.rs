//! Sartorius SBI (Sartorius Balance Interface), as on Entris, Quintix and Cubis balances.
//!
//! Commands are `ESC` + a letter, no terminator: `ESC P` print, `ESC T` tare, `ESC V` zero.
//! Output is 16 characters (sign, value right-aligned in 8, blank, unit left-aligned in 3,
//! blank, CR LF), or 22 with a 6-character identification code in front (`N     `, `G     `).
//! While the load is moving the unit field is blank: that blank is the only motion flag SBI
//! has. Overload and underload print `High` and `Low` in the value field.

use std::time::Instant;

use super::Protocol;
use crate::profile::{Sample, Scale};

const ESC: u8 = 0x1b;

#[derive(Debug)]
pub struct Sbi {
    /// 22-character output with identification code.
    long: bool,
    after_esc: bool,
}

impl Sbi {
    pub fn new(long: bool) -> Sbi {
        Sbi {
            long,
            after_esc: false,
        }
    }

    fn line(&self, s: &Sample) -> Vec<u8> {
        let id = if s.tare.is_zero() { "G     " } else { "N     " };
        let body = if s.overload {
            format!("+{:>8} {:<3} ", "High", "")
        } else if s.underload {
            format!("-{:>8} {:<3} ", "Low", "")
        } else {
            let sign = if s.net.is_sign_negative() && !s.net.is_zero() {
                '-'
            } else {
                '+'
            };
            let unit = if s.stable { s.unit.symbol() } else { "" };
            format!("{sign}{:>8} {unit:<3} ", s.net.abs().to_string())
        };
        let mut out = String::new();
        if self.long {
            out.push_str(id);
        }
        out.push_str(&body);
        out.push_str("\r\n");
        out.into_bytes()
    }
}

impl Protocol for Sbi {
    fn input(&mut self, bytes: &[u8], scale: &mut Scale, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == ESC {
                self.after_esc = true;
                continue;
            }
            if !self.after_esc {
                continue; // SBI ignores anything outside an escape sequence
            }
            self.after_esc = false;
            match b {
                b'P' => out.extend(self.line(&scale.sample(now))),
                // Tare and zero answer nothing on SBI; a refused one is just not done.
                b'T' => {
                    let _ = scale.tare(now);
                }
                b'V' => {
                    let _ = scale.zero(now);
                }
                _ => {}
            }
        }
        out
    }

    fn tick(&mut self, _scale: &mut Scale, _now: Instant) -> Vec<u8> {
        Vec::new()
    }

    fn print(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8> {
        self.line(&scale.sample(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;
    use std::time::Duration;

    #[test]
    fn sixteen_and_twenty_two_characters() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(148.3, t0);
        let t = t0 + Duration::from_secs(1);
        let short = Sbi::new(false).input(b"\x1bP", &mut s, t);
        assert_eq!(short, b"+  148.30 g   \r\n");
        assert_eq!(short.len(), 16);
        let long = Sbi::new(true).input(b"\x1bP", &mut s, t);
        assert_eq!(long, b"G     +  148.30 g   \r\n");
        assert_eq!(long.len(), 22);
    }

    #[test]
    fn no_unit_while_unstable() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.settle = Duration::from_secs(5);
        s.set_load(148.3, t0);
        let line = Sbi::new(false).input(b"\x1bP", &mut s, t0 + Duration::from_millis(50));
        assert_eq!(line.len(), 16);
        assert_eq!(&line[9..14], b"     ");
    }
}
