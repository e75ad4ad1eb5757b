//! The control language: one command per line, from the control socket or a script file.
//!
//! Tests and demos drive the simulated scale with it:
//! `set 148.30` (load on the pan, display units), `settle 500ms`, `noise 0.02`, `drift 0.01`
//! (per second), `overload`, `underload`, `normal`, `disconnect`, `reconnect`, `garbage 16`,
//! `baud 4800` (the scale's own rate; a mismatch garbles the line), `print` (the Print key),
//! `autoprint 100ms|off`, `tare`, `zero` (keypad keys), `status`, and in scripts
//! `wait 2s`. Every command answers one line: `ok …` or `err …`.

use std::time::Duration;

/// One control command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Set(f64),
    Settle(Duration),
    Noise(f64),
    Drift(f64),
    Overload,
    Underload,
    Normal,
    Disconnect,
    Reconnect,
    Garbage(usize),
    Baud(u32),
    Print,
    AutoPrint(Option<Duration>),
    Tare,
    Zero,
    Status,
    Wait(Duration),
}

/// Parses `500ms`, `2s`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("duration {s:?} needs a unit: ms or s"));
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

fn number(s: Option<&str>, what: &str) -> Result<f64, String> {
    let s = s.ok_or_else(|| format!("{what} needs a number"))?;
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s:?} is not a finite number"))
    }
}

impl Command {
    /// Parses one line; `Ok(None)` for blank lines and `#` comments.
    pub fn parse(line: &str) -> Result<Option<Command>, String> {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(verb) = words.next() else {
            return Ok(None);
        };
        let arg = words.next();
        let cmd = match verb {
            "set" => Command::Set(number(arg, "set")?),
            "settle" => Command::Settle(parse_duration(arg.ok_or("settle needs a duration")?)?),
            "noise" => Command::Noise(number(arg, "noise")?.abs()),
            "drift" => Command::Drift(number(arg, "drift")?),
            "overload" => Command::Overload,
            "underload" => Command::Underload,
            "normal" => Command::Normal,
            "disconnect" => Command::Disconnect,
            "reconnect" => Command::Reconnect,
            "garbage" => Command::Garbage(match arg {
                Some(n) => n.parse().map_err(|_| format!("{n:?} is not a count"))?,
                None => 16,
            }),
            "baud" => Command::Baud(
                arg.and_then(|a| a.parse().ok())
                    .ok_or("baud needs a rate")?,
            ),
            "print" => Command::Print,
            "autoprint" => Command::AutoPrint(match arg {
                Some("off") | None => None,
                Some(d) => Some(parse_duration(d)?),
            }),
            "tare" => Command::Tare,
            "zero" => Command::Zero,
            "status" => Command::Status,
            "wait" => Command::Wait(parse_duration(arg.ok_or("wait needs a duration")?)?),
            other => return Err(format!("unknown command {other:?}")),
        };
        Ok(Some(cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_language() {
        assert_eq!(Command::parse("set 148.30"), Ok(Some(Command::Set(148.3))));
        assert_eq!(
            Command::parse("settle 500ms"),
            Ok(Some(Command::Settle(Duration::from_millis(500))))
        );
        assert_eq!(
            Command::parse("wait 1.5s # comment"),
            Ok(Some(Command::Wait(Duration::from_millis(1500))))
        );
        assert_eq!(Command::parse("  # only a comment"), Ok(None));
        assert_eq!(Command::parse("garbage"), Ok(Some(Command::Garbage(16))));
        assert!(Command::parse("set abc").is_err());
        assert!(Command::parse("settle 5").is_err());
        assert!(Command::parse("explode").is_err());
    }
}
