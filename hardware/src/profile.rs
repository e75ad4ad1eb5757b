//! The simulated load cell: what weight the scale "sees" at any moment.
//!
//! A [`Scale`] holds the physical state (target load, settling dynamics, noise, drift, forced
//! overload/underload) and the scale's own tare and zero offset. Protocol modules ask it for a
//! [`Sample`] at an instant and format it in their framing; the control channel and the
//! script change it. Dynamics run in `f64` because they are a model of physics; every value a
//! protocol prints is rounded to the display resolution as an exact [`Decimal`].

use std::time::{Duration, Instant};

use metcon_shared::mass::MassUnit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// One look at the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub gross: Decimal,
    pub tare: Decimal,
    pub net: Decimal,
    pub unit: MassUnit,
    pub stable: bool,
    pub overload: bool,
    pub underload: bool,
}

/// Why the scale refused a tare or zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the load is not stable")]
    NotStable,
    #[error("the load is outside the zero range")]
    OutOfRange,
    #[error("the scale is overloaded or underloaded")]
    OverOrUnder,
}

/// The simulated scale. See the module docs.
#[derive(Debug)]
pub struct Scale {
    pub unit: MassUnit,
    /// Number of decimals shown; the display resolution is 10^-decimals.
    pub decimals: u32,
    pub capacity: f64,
    pub serial: String,
    target: f64,
    start: f64,
    changed_at: Instant,
    pub settle: Duration,
    pub noise: f64,
    /// Drift in display units per second, accumulated after the load settled.
    pub drift_per_s: f64,
    pub forced_overload: bool,
    pub forced_underload: bool,
    zero_offset: f64,
    tare: f64,
    rng: StdRng,
}

impl Scale {
    pub fn new(unit: MassUnit, decimals: u32, capacity: f64, seed: u64, now: Instant) -> Scale {
        Scale {
            unit,
            decimals,
            capacity,
            serial: "B123456789".into(),
            target: 0.0,
            start: 0.0,
            changed_at: now,
            settle: Duration::from_millis(300),
            noise: 0.0,
            drift_per_s: 0.0,
            forced_overload: false,
            forced_underload: false,
            zero_offset: 0.0,
            tare: 0.0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn resolution(&self) -> f64 {
        10f64.powi(-(self.decimals as i32))
    }

    /// Puts `load` (display units, before tare and zero) on the pan at `now`.
    pub fn set_load(&mut self, load: f64, now: Instant) {
        self.start = self.raw(now, false);
        self.target = load;
        self.changed_at = now;
    }

    fn settled(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.changed_at) >= self.settle
    }

    /// The load cell signal (before zero offset), with noise if asked.
    fn raw(&mut self, now: Instant, with_noise: bool) -> f64 {
        let elapsed = now.saturating_duration_since(self.changed_at);
        let settle = self.settle.as_secs_f64().max(1e-6);
        let t = elapsed.as_secs_f64();
        let motion = if t >= settle {
            0.0
        } else {
            // exponential approach, 99 % of the step done at `settle`, then snapped
            (self.start - self.target) * (-4.6 * t / settle).exp()
        };
        let drift = if t > settle {
            self.drift_per_s * (t - settle)
        } else {
            0.0
        };
        let noise = if with_noise && self.noise > 0.0 {
            self.rng.gen_range(-self.noise..=self.noise)
        } else {
            0.0
        };
        self.target + motion + drift + noise
    }

    fn round(&self, v: f64) -> Decimal {
        let steps = (v / self.resolution()).round();
        let steps = steps.to_i64().unwrap_or(0);
        Decimal::new(steps, self.decimals)
    }

    pub fn sample(&mut self, now: Instant) -> Sample {
        let gross_f = self.raw(now, true) - self.zero_offset;
        let gross = self.round(gross_f);
        let tare = self.round(self.tare);
        let stable = self.settled(now) && self.noise < self.resolution() / 2.0;
        let overload =
            self.forced_overload || gross_f > self.capacity * 1.0 + 9.0 * self.resolution();
        let underload = !overload && (self.forced_underload || gross_f < -0.02 * self.capacity);
        Sample {
            gross,
            tare,
            net: gross - tare,
            unit: self.unit,
            stable,
            overload,
            underload,
        }
    }

    /// The Tare key: the current gross becomes the tare.
    pub fn tare(&mut self, now: Instant) -> Result<Decimal, Refusal> {
        let s = self.sample(now);
        if s.overload || s.underload {
            return Err(Refusal::OverOrUnder);
        }
        if !s.stable {
            return Err(Refusal::NotStable);
        }
        self.tare = s.gross.to_f64().unwrap_or(0.0);
        Ok(s.gross)
    }

    /// Clears the tare.
    pub fn clear_tare(&mut self) {
        self.tare = 0.0;
    }

    /// The Zero key: allowed within ±2 % of capacity; clears the tare.
    pub fn zero(&mut self, now: Instant) -> Result<(), Refusal> {
        let s = self.sample(now);
        if s.overload || s.underload {
            return Err(Refusal::OverOrUnder);
        }
        if !s.stable {
            return Err(Refusal::NotStable);
        }
        let g = s.gross.to_f64().unwrap_or(0.0);
        if g.abs() > 0.02 * self.capacity {
            return Err(Refusal::OutOfRange);
        }
        self.zero_offset += g;
        self.tare = 0.0;
        Ok(())
    }

    /// Garbage bytes, as a noisy line or a wrong baud rate produces them.
    pub fn garbage(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.rng.gen_range(0x80u8..=0xff)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("literal")
    }

    #[test]
    fn settles_to_the_target_and_reports_stable() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.settle = Duration::from_millis(500);
        s.set_load(148.3, t0);
        let mid = s.sample(t0 + Duration::from_millis(100));
        assert!(!mid.stable);
        assert!(mid.gross < d("148.30"));
        let end = s.sample(t0 + Duration::from_millis(600));
        assert!(end.stable);
        assert_eq!(end.gross, d("148.30"));
        assert_eq!(end.gross.to_string(), "148.30");
    }

    #[test]
    fn tare_and_zero() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(50.0, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(s.zero(t1), Err(Refusal::OutOfRange));
        assert_eq!(s.tare(t1), Ok(d("50.00")));
        s.set_load(60.0, t1);
        let smp = s.sample(t1 + Duration::from_secs(1));
        assert_eq!(
            (smp.gross, smp.tare, smp.net),
            (d("60.00"), d("50.00"), d("10.00"))
        );
    }

    #[test]
    fn overload_above_capacity() {
        let t0 = Instant::now();
        let mut s = Scale::new(MassUnit::G, 2, 1000.0, 1, t0);
        s.set_load(2000.0, t0);
        assert!(s.sample(t0 + Duration::from_secs(1)).overload);
    }
}
