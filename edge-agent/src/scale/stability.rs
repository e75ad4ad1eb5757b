//! The software stability filter on top of the scale's own stable flag.
//!
//! A scale's flag can be set too eagerly (a draught, a vibrating bench, a badly configured
//! filter). A weight counts as stable here only when the scale says so *and* the last `count`
//! readings within `window` all lie within one display step (the resolution given by the
//! number of decimals the scale printed) and share one unit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use metcon_shared::mass::MassUnit;
use rust_decimal::Decimal;

use super::Weighing;

#[derive(Debug, Clone)]
pub struct StabilityFilter {
    count: usize,
    window: Duration,
    recent: VecDeque<(Instant, Decimal, MassUnit, bool)>,
}

impl StabilityFilter {
    pub fn new(count: usize, window: Duration) -> StabilityFilter {
        StabilityFilter {
            count: count.max(1),
            window,
            recent: VecDeque::new(),
        }
    }

    /// Forgets history (after overload, reconnect, tare).
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Adds a reading; returns whether the weight is stable now.
    pub fn push(&mut self, at: Instant, w: &Weighing) -> bool {
        self.recent.push_back((at, w.net, w.unit, w.stable));
        while self
            .recent
            .front()
            .is_some_and(|(t, ..)| at.saturating_duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        while self.recent.len() > self.count {
            self.recent.pop_front();
        }
        if self.recent.len() < self.count {
            return false;
        }
        let resolution = Decimal::new(1, w.net.scale());
        let (mut lo, mut hi) = (w.net, w.net);
        for (_, v, u, s) in &self.recent {
            if !s || *u != w.unit {
                return false;
            }
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
        hi - lo <= resolution
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &str, stable: bool) -> Weighing {
        Weighing {
            net: Decimal::from_str_exact(v).expect("literal"),
            gross: None,
            tare: None,
            unit: MassUnit::G,
            stable,
        }
    }

    #[test]
    fn needs_n_close_readings_within_the_window() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut f = StabilityFilter::new(3, ms(500));
        assert!(!f.push(t, &w("148.30", true)));
        assert!(!f.push(t + ms(100), &w("148.31", true)));
        assert!(
            f.push(t + ms(200), &w("148.30", true)),
            "three within one step"
        );
        assert!(
            !f.push(t + ms(300), &w("148.33", true)),
            "jump of three steps"
        );
        assert!(!f.push(t + ms(400), &w("148.33", true)));
        assert!(f.push(t + ms(500), &w("148.33", true)));
        assert!(!f.push(t + ms(600), &w("148.33", false)), "scale flag wins");
        f.reset();
        assert!(!f.push(t + ms(700), &w("148.33", true)));
        assert!(!f.push(t + ms(1500), &w("148.33", true)));
        assert!(
            !f.push(t + ms(2500), &w("148.33", true)),
            "readings too far apart"
        );
    }
}
