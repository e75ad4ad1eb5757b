//! Words and numbers as the pages show them: masses (exact decimals, as recorded), tolerances,
//! deviations with their sign, ages, and one line per batch event.

use metcon_shared::batch::{BatchEvent, MassSource, RecordedEvent};
use metcon_shared::mass::{Mass, MassUnit};
use metcon_shared::tolerance::{Tolerance, ToleranceCheck};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

pub fn mass(m: &Mass) -> String {
    format!("{} {}", m.value(), m.unit().symbol())
}

pub fn amount(value: Decimal, unit: MassUnit) -> String {
    format!("{} {}", value, unit.symbol())
}

pub fn tolerance(t: &Tolerance) -> String {
    match t {
        Tolerance::Absolute { value, unit } => amount(*value, *unit),
        Tolerance::Relative { percent } => format!("{percent} %"),
    }
}

/// "+12.00 g (+1.2 %)", signed, in the expected mass's unit, with at least as many decimals
/// as the reading (trailing zeros only: the value stays exact).
pub fn deviation(c: &ToleranceCheck, actual: &Mass) -> String {
    let sign = if c.variance.is_sign_positive() && !c.variance.is_zero() {
        "+"
    } else {
        ""
    };
    let mut v = c.variance;
    if v.scale() < actual.value().scale() {
        v.rescale(actual.value().scale());
    }
    let mut s = format!("{sign}{}", amount(v, c.unit));
    if let Some(p) = c.variance_pct {
        s.push_str(&format!(" ({sign}{} %)", p.normalize()));
    }
    s
}

/// "5 min", "2 h 5 min", "3 d 4 h".
pub fn age(since: OffsetDateTime, now: OffsetDateTime) -> String {
    let d = (now - since).max(Duration::ZERO);
    let mins = d.whole_minutes();
    if mins < 1 {
        "just now".into()
    } else if mins < 60 {
        format!("{mins} min")
    } else if mins < 24 * 60 {
        format!("{} h {} min", mins / 60, mins % 60)
    } else {
        format!("{} d {} h", mins / (24 * 60), (mins / 60) % 24)
    }
}

pub fn time(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn source(s: &MassSource) -> String {
    match s {
        MassSource::Manual => "entered by hand".into(),
        MassSource::Device {
            device_id,
            sequence,
        } => format!("signed reading {sequence} of {device_id}"),
        MassSource::Ocr { confidence, .. } => {
            format!("read from the display (confidence {confidence})")
        }
        MassSource::ManualUnreadablePhoto { .. } => {
            "entered by hand (the display photo was unreadable)".into()
        }
    }
}

/// The green or red line of a mass check.
pub fn verdict_headline(actual: &Mass, c: &ToleranceCheck) -> String {
    if c.within {
        format!("{} ✓ within tolerance", mass(actual))
    } else {
        format!("{} ✗ outside tolerance", mass(actual))
    }
}

/// One line of a batch's history.
pub fn event(e: &RecordedEvent) -> String {
    match &e.event {
        BatchEvent::Created {
            batch_number,
            flow_id,
            flow_version,
            ..
        } => {
            format!("created {batch_number} on {flow_id} v{flow_version}")
        }
        BatchEvent::Started => "started".into(),
        BatchEvent::StepCompleted { step_id, .. } => format!("completed step {step_id}"),
        BatchEvent::MassChecked {
            step_id,
            actual,
            check,
            ..
        } => format!(
            "weighed {} at {step_id}: {}",
            mass(actual),
            if check.within {
                "within tolerance".to_string()
            } else {
                format!("outside tolerance, {}", deviation(check, actual))
            }
        ),
        BatchEvent::FlagRaised {
            step_id, reason, ..
        } => {
            format!("flag raised at {step_id}: {reason}")
        }
        BatchEvent::FlagApproved { reason, .. } => format!("flag approved: {reason}"),
        BatchEvent::FlagRejected { reason, .. } => format!("flag rejected: {reason}"),
        BatchEvent::Blocked { reason } => format!("blocked: {reason}"),
        BatchEvent::Unblocked { reason } => format!("unblocked: {reason}"),
        BatchEvent::Overridden {
            to_step_id, reason, ..
        } => format!("moved back to {to_step_id}: {reason}"),
        BatchEvent::Completed => "completed the batch".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::prelude::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn masses_keep_their_exact_digits() {
        let m = Mass::parse("148.30", "g").expect("mass");
        assert_eq!(mass(&m), "148.30 g");
    }

    #[test]
    fn the_verdict_reads_like_the_kiosk_says() {
        let t = Tolerance::Absolute {
            value: d("0.5"),
            unit: MassUnit::G,
        };
        let expected = Mass::parse("148", "g").expect("mass");
        let ok = Mass::parse("148.3", "g").expect("mass");
        let c = t.check(&expected, &ok);
        assert_eq!(verdict_headline(&ok, &c), "148.3 g ✓ within tolerance");
        let bad = Mass::parse("160", "g").expect("mass");
        let c = t.check(&expected, &bad);
        assert_eq!(verdict_headline(&bad, &c), "160 g ✗ outside tolerance");
        assert!(
            deviation(&c, &bad).starts_with("+12"),
            "{}",
            deviation(&c, &bad)
        );
        let low = Mass::parse("140", "g").expect("mass");
        assert!(deviation(&t.check(&expected, &low), &low).starts_with("-8"));
        let precise = Mass::parse("1012.00", "g").expect("mass");
        let c = Tolerance::Absolute {
            value: d("0.5"),
            unit: MassUnit::G,
        }
        .check(&Mass::parse("1000", "g").expect("mass"), &precise);
        assert_eq!(deviation(&c, &precise), "+12.00 g (+1.2 %)");
    }

    #[test]
    fn tolerances_show_their_kind() {
        assert_eq!(
            tolerance(&Tolerance::Relative { percent: d("0.2") }),
            "0.2 %"
        );
    }

    #[test]
    fn ages_round_down_to_whole_minutes() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10);
        assert_eq!(age(now - Duration::seconds(30), now), "just now");
        assert_eq!(age(now - Duration::minutes(5), now), "5 min");
        assert_eq!(age(now - Duration::minutes(125), now), "2 h 5 min");
        assert_eq!(age(now - Duration::hours(76), now), "3 d 4 h");
        assert_eq!(age(now + Duration::minutes(5), now), "just now");
    }
}
