//! Mettler-Toledo MT-SICS level 0/1, as spoken by Excellence/XS/MS balances.
//!
//! Commands end in CR LF. Weight responses are `S S` (stable) or `S D` (dynamic), a blank,
//! the value right-aligned in 10 characters, a blank and the unit: `S S     148.30 g`.
//! `S +`/`S -` are overload/underload, `S I` "cannot execute now". `ES`, `ET`, `EL` are syntax,
//! transmission and logical errors. `SIR` repeats `SI` output until the next command.

use std::time::{Duration, Instant};

use super::{Lines, Protocol};
use crate::profile::{Refusal, Sample, Scale};

/// How long `S` waits for stability before answering `S I`.
const STABLE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
pub struct MtSics {
    lines: Lines,
    repeat: bool,
    /// An `S` waiting for stability, since when.
    pending_stable: Option<Instant>,
}

fn weight_line(prefix: &str, s: &Sample, require_stable: bool) -> Vec<u8> {
    if s.overload {
        return format!("{prefix} +\r\n").into_bytes();
    }
    if s.underload {
        return format!("{prefix} -\r\n").into_bytes();
    }
    let status = if s.stable || require_stable { 'S' } else { 'D' };
    format!("{prefix} {status} {:>10} {}\r\n", s.net.to_string(), s.unit).into_bytes()
}

impl Protocol for MtSics {
    fn input(&mut self, bytes: &[u8], scale: &mut Scale, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        for cmd in self.lines.feed(bytes) {
            // any command stops SIR and cancels a waiting S
            self.repeat = false;
            self.pending_stable = None;
            let Ok(cmd) = std::str::from_utf8(&cmd) else {
                out.extend_from_slice(b"ET\r\n");
                continue;
            };
            match cmd.trim_end() {
                "S" => {
                    let s = scale.sample(now);
                    if s.stable || s.overload || s.underload {
                        out.extend(weight_line("S", &s, true));
                    } else {
                        self.pending_stable = Some(now);
                    }
                }
                "SI" => out.extend(weight_line("S", &scale.sample(now), false)),
                "SIR" => {
                    self.repeat = true;
                    out.extend(weight_line("S", &scale.sample(now), false));
                }
                "Z" => out.extend_from_slice(match scale.zero(now) {
                    Ok(()) => b"Z A\r\n",
                    Err(Refusal::NotStable) => b"Z I\r\n",
                    Err(Refusal::OutOfRange) | Err(Refusal::OverOrUnder) => {
                        if scale.sample(now).underload {
                            b"Z -\r\n"
                        } else {
                            b"Z +\r\n"
                        }
                    }
                }),
                "T" => match scale.tare(now) {
                    Ok(t) => out.extend(format!("T S {:>10} {}\r\n", t.to_string(), scale.unit).into_bytes()),
                    Err(Refusal::NotStable) => out.extend_from_slice(b"T I\r\n"),
                    Err(_) => out.extend_from_slice(if scale.sample(now).underload {
                        b"T -\r\n"
                    } else {
                        b"T +\r\n"
                    }),
                },
                "I4" => out.extend(format!("I4 A \"{}\"\r\n", scale.serial).into_bytes()),
                "I0" => out.extend_from_slice(
                    b"I0 B 0 \"I0\"\r\nI0 B 0 \"I4\"\r\nI0 B 0 \"S\"\r\nI0 B 0 \"SI\"\r\nI0 B 0 \"SIR\"\r\nI0 B 0 \"T\"\r\nI0 A 0 \"Z\"\r\n",
                ),
                "@" => out.extend(format!("I4 A \"{}\"\r\n", scale.serial).into_bytes()),
                c if c.starts_with("I4 ") || c.starts_with("S ") => out.extend_from_slice(b"EL\r\n"),
                _ => out.extend_from_slice(b"ES\r\n"),
            }
        }
        out
    }

    fn tick(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8> {
        if let Some(since) = self.pending_stable {
            let s = scale.sample(now);
            if s.stable || s.overload || s.underload {
                self.pending_stable = None;
                return weight_line("S", &s, true);
            }
            if now.saturating_duration_since(since) > STABLE_TIMEOUT {
                self.pending_stable = None;
                return b"S I\r\n".to_vec();
            }
        }
        if self.repeat {
            return weight_line("S", &scale.sample(now), false);
        }
        Vec::new()
    }

    fn print(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8> {
        let s = scale.sample(now);
        weight_line("S", &s, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;

    fn settled() -> (Scale, Instant) {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(148.3, t0);
        (s, t0 + Duration::from_secs(1))
    }

    #[test]
    fn framing_is_exact() {
        let (mut s, t) = settled();
        let mut p = MtSics::default();
        assert_eq!(p.input(b"SI\r\n", &mut s, t), b"S S     148.30 g\r\n");
        assert_eq!(p.input(b"S\r\n", &mut s, t), b"S S     148.30 g\r\n");
        assert_eq!(p.input(b"I4\r\n", &mut s, t), b"I4 A \"B123456789\"\r\n");
        assert_eq!(p.input(b"XYZ\r\n", &mut s, t), b"ES\r\n");
        assert_eq!(p.input(b"T\r\n", &mut s, t), b"T S     148.30 g\r\n");
        assert_eq!(p.input(b"SI\r\n", &mut s, t), b"S S       0.00 g\r\n");
    }

    #[test]
    fn dynamic_and_overload() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.settle = Duration::from_secs(2);
        s.set_load(100.0, t0);
        let mut p = MtSics::default();
        let r = p.input(b"SI\r\n", &mut s, t0 + Duration::from_millis(10));
        assert!(r.starts_with(b"S D "), "{:?}", String::from_utf8_lossy(&r));
        s.forced_overload = true;
        assert_eq!(p.input(b"SI\r\n", &mut s, t0), b"S +\r\n");
    }
}
