//! A generic "print" scale: it sends one line each time the operator presses Print and
//! ignores everything the host sends. Many older or low-cost scales only do this.
//!
//! The line is `NET`, the signed value right-aligned in 10 characters, a blank and the unit,
//! CR LF: `NET     148.30 g`. A moving load prints `?` after the unit; an overloaded scale
//! prints `OVERLOAD`, an underloaded one `UNDERLOAD`.

use std::time::Instant;

use super::Protocol;
use crate::profile::{Sample, Scale};

#[derive(Debug, Default)]
pub struct PrintLine;

pub fn line(s: &Sample) -> Vec<u8> {
    if s.overload {
        return b"OVERLOAD\r\n".to_vec();
    }
    if s.underload {
        return b"UNDERLOAD\r\n".to_vec();
    }
    let stab = if s.stable { "" } else { " ?" };
    format!("NET {:>10} {}{stab}\r\n", s.net.to_string(), s.unit).into_bytes()
}

impl Protocol for PrintLine {
    fn input(&mut self, _bytes: &[u8], _scale: &mut Scale, _now: Instant) -> Vec<u8> {
        Vec::new()
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
    fn one_line_per_print() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(148.3, t0);
        let t = t0 + Duration::from_secs(1);
        assert_eq!(PrintLine.print(&mut s, t), b"NET     148.30 g\r\n");
        assert!(PrintLine.input(b"P\r\n", &mut s, t).is_empty());
    }
}
