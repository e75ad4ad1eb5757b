//! Mettler-Toledo continuous output (the "Toledo" format of indicators such as IND560/8142).
//!
//! The indicator sends a fixed 18-byte frame many times a second without being asked:
//! `STX SWA SWB SWC` + 6 weight digits + 6 tare digits (no decimal point) + `CR` + checksum
//! (two's complement of the 7-bit sum of STX..CR). Status word A holds the decimal point
//! position (bits 0–2) and increment size; B the net flag (bit 0), sign (1), out of range
//! (2), motion (3), kg (4); C the unit code (bits 0–2: 0 = lb/kg per B, 1 = g, 4 = troy
//! ounce) and the print request (bit 3). Bit 5 of every status byte is set. The host may send
//! the single-letter CTPZ commands (clear, tare, print, zero).

use std::time::Instant;

use metcon_shared::mass::MassUnit;
use rust_decimal::Decimal;

use super::Protocol;
use crate::profile::{Sample, Scale};

pub const STX: u8 = 0x02;
pub const CR: u8 = 0x0d;

#[derive(Debug, Default)]
pub struct Toledo {
    print_request: bool,
}

fn digits(v: Decimal, decimals: u32) -> String {
    let scaled = (v.abs() * Decimal::from(10u64.pow(decimals))).trunc();
    let s = scaled.to_string();
    if s.len() > 6 {
        "999999".into()
    } else {
        format!("{s:0>6}")
    }
}

pub fn frame(s: &Sample, decimals: u32, print: bool) -> Vec<u8> {
    let dp = (decimals + 2).min(7) as u8;
    let swa = 0x20 | (0b01 << 3) | dp;
    let mut swb = 0x20u8;
    if !s.tare.is_zero() {
        swb |= 0x01;
    }
    let shown = if s.tare.is_zero() { s.gross } else { s.net };
    if (shown.is_sign_negative() && !shown.is_zero()) || s.underload {
        swb |= 0x02;
    }
    if s.overload || s.underload {
        swb |= 0x04;
    }
    if !s.stable {
        swb |= 0x08;
    }
    let unit_code = match s.unit {
        MassUnit::Kg => {
            swb |= 0x10;
            0
        }
        MassUnit::G => 1,
        MassUnit::Ozt => 4,
        MassUnit::Mg | MassUnit::Ct => 7,
    };
    let swc = 0x20 | unit_code | if print { 0x08 } else { 0 };
    let mut out = vec![STX, swa, swb, swc];
    out.extend_from_slice(digits(shown, decimals).as_bytes());
    out.extend_from_slice(digits(s.tare, decimals).as_bytes());
    out.push(CR);
    let sum: u32 = out.iter().map(|&b| u32::from(b)).sum();
    out.push(((0x80 - (sum & 0x7f)) & 0x7f) as u8);
    out
}

impl Protocol for Toledo {
    fn input(&mut self, bytes: &[u8], scale: &mut Scale, now: Instant) -> Vec<u8> {
        // Continuous output answers nothing, but takes the single-letter CTPZ commands:
        // C clear tare, T tare, P print, Z zero. Refused ones are simply not done.
        for &b in bytes {
            match b {
                b'C' => scale.clear_tare(),
                b'T' => {
                    let _ = scale.tare(now);
                }
                b'P' => self.print_request = true,
                b'Z' => {
                    let _ = scale.zero(now);
                }
                _ => {}
            }
        }
        Vec::new()
    }

    fn tick(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8> {
        let print = std::mem::take(&mut self.print_request);
        frame(&scale.sample(now), scale.decimals, print)
    }

    fn print(&mut self, _scale: &mut Scale, _now: Instant) -> Vec<u8> {
        self.print_request = true;
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frame_layout_and_checksum() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(148.3, t0);
        let f = frame(&s.sample(t0 + Duration::from_secs(1)), 2, false);
        assert_eq!(f.len(), 18);
        assert_eq!(f[0], STX);
        assert_eq!(f[1], 0x20 | 0x08 | 4); // x1 increment, X.XX
        assert_eq!(f[2], 0x20); // gross, positive, in range, no motion
        assert_eq!(f[3], 0x21); // grams
        assert_eq!(&f[4..10], b"014830");
        assert_eq!(&f[10..16], b"000000");
        assert_eq!(f[16], CR);
        let sum: u32 = f.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(sum & 0x7f, 0, "checksum makes the 7-bit sum zero");
    }
}
