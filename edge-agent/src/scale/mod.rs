//! Scale drivers: what the agent knows about talking to scales.
//!
//! Each protocol module parses one framed response into a typed [`Reply`] or a typed
//! [`ParseError`] (including the scale's own error replies). [`Framer`] cuts the byte stream
//! into frames (CR LF lines, or Toledo's fixed STX…CR+checksum frames), [`transport`] opens
//! serial ports and TCP converters behind one trait, [`probe`] finds the protocol by asking,
//! [`stability`] is the software filter on top of the scale's stable flag, and [`driver`]
//! runs the poll/read loop.

use std::fmt;
use std::str::FromStr;

use metcon_shared::mass::MassUnit;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub mod a_and_d;
pub mod driver;
pub mod framer;
pub mod mt_sics;
pub mod ohaus;
pub mod print_line;
pub mod probe;
pub mod sbi;
pub mod stability;
pub mod toledo;
pub mod transport;

pub use framer::Framer;

/// The protocols the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    MtSics,
    Sbi,
    AAndD,
    Ohaus,
    Toledo,
    PrintLine,
}

impl Protocol {
    pub const ALL: [Protocol; 6] = [
        Protocol::MtSics,
        Protocol::Sbi,
        Protocol::AAndD,
        Protocol::Ohaus,
        Protocol::Toledo,
        Protocol::PrintLine,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::MtSics => "mt-sics",
            Protocol::Sbi => "sbi",
            Protocol::AAndD => "a-and-d",
            Protocol::Ohaus => "ohaus",
            Protocol::Toledo => "toledo",
            Protocol::PrintLine => "print-line",
        }
    }

    /// Parses one frame (without its CR LF for line protocols).
    pub fn parse(self, frame: &[u8], fallback_unit: MassUnit) -> Result<Reply, ParseError> {
        match self {
            Protocol::MtSics => mt_sics::parse(frame),
            Protocol::Sbi => sbi::parse(frame, fallback_unit),
            Protocol::AAndD => a_and_d::parse(frame),
            Protocol::Ohaus => ohaus::parse(frame),
            Protocol::Toledo => toledo::parse(frame),
            Protocol::PrintLine => print_line::parse(frame),
        }
    }

    /// The command that asks for the current weight; `None` for scales that send on their own.
    pub fn poll_command(self) -> Option<&'static [u8]> {
        match self {
            Protocol::MtSics => Some(b"SI\r\n"),
            Protocol::Sbi => Some(b"\x1bP"),
            Protocol::AAndD => Some(b"Q\r\n"),
            Protocol::Ohaus => Some(b"IP\r\n"),
            Protocol::Toledo | Protocol::PrintLine => None,
        }
    }

    pub fn tare_command(self) -> Option<&'static [u8]> {
        match self {
            Protocol::MtSics | Protocol::AAndD | Protocol::Ohaus => Some(b"T\r\n"),
            Protocol::Sbi => Some(b"\x1bT"),
            Protocol::Toledo => Some(b"T"),
            Protocol::PrintLine => None,
        }
    }

    pub fn zero_command(self) -> Option<&'static [u8]> {
        match self {
            Protocol::MtSics | Protocol::AAndD | Protocol::Ohaus => Some(b"Z\r\n"),
            Protocol::Sbi => Some(b"\x1bV"),
            Protocol::Toledo => Some(b"Z"),
            Protocol::PrintLine => None,
        }
    }

    /// The command that asks for the scale's serial number, where the protocol has one.
    pub fn serial_command(self) -> Option<&'static [u8]> {
        match self {
            Protocol::MtSics => Some(b"I4\r\n"),
            Protocol::Ohaus => Some(b"PSN\r\n"),
            _ => None,
        }
    }

    pub fn framer(self) -> Framer {
        match self {
            Protocol::Toledo => Framer::toledo(),
            _ => Framer::lines(),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown protocol {s:?}"))
    }
}

/// A weight as the scale reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighing {
    /// Displayed (net) value; negative after a tare.
    pub net: Decimal,
    pub gross: Option<Decimal>,
    pub tare: Option<Decimal>,
    pub unit: MassUnit,
    /// The scale's own stability flag.
    pub stable: bool,
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A weight, polled or streamed.
    Weight(Weighing),
    /// A weight sent because the operator pressed Print (print-line, Toledo print request).
    Printed(Weighing),
    Overload,
    Underload,
    /// A tare was done; MT-SICS reports the tare weight.
    Tared(Option<Weighing>),
    Zeroed,
    /// The scale's serial number.
    Serial(String),
}

/// Why a frame is not a usable reply. The first four are the scale's own error replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the scale did not understand the command")]
    CommandNotUnderstood,
    #[error("the scale reports a transmission error (parity, framing, baud rate?)")]
    Transmission,
    #[error("the scale cannot execute the command now (not stable, busy or refused)")]
    NotExecutable,
    #[error("the scale reports error {0}")]
    ScaleError(String),
    #[error("frame contains bytes that are not printable ASCII: {0}")]
    NotAscii(String),
    #[error("unexpected frame {0:?}")]
    Unexpected(String),
    #[error("{0:?} is not a decimal number")]
    BadNumber(String),
    #[error("unit {0:?} is not supported")]
    Unit(String),
    #[error("frame checksum does not match")]
    Checksum,
    #[error("frame is {0} bytes, not the protocol's length")]
    Length(usize),
}

/// Frame bytes as text for messages and the signed reading's raw line: printable ASCII as
/// is, everything else escaped (`\x02`).
pub fn escape(frame: &[u8]) -> String {
    frame.escape_ascii().to_string()
}

/// The frame as ASCII text, or a typed error.
pub(crate) fn ascii(frame: &[u8]) -> Result<&str, ParseError> {
    if frame.iter().all(|b| (0x20..0x7f).contains(b)) {
        std::str::from_utf8(frame).map_err(|_| ParseError::NotAscii(escape(frame)))
    } else {
        Err(ParseError::NotAscii(escape(frame)))
    }
}

/// A decimal as scales print it: optional sign (`+` allowed), digits, optional point.
pub(crate) fn number(s: &str) -> Result<Decimal, ParseError> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, t[1..].trim_start()),
        Some(b'+') => (false, t[1..].trim_start()),
        _ => (false, t),
    };
    let ok = !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().filter(|&b| b == b'.').count() <= 1
        && body.bytes().any(|b| b.is_ascii_digit());
    if !ok || body.len() > 20 {
        return Err(ParseError::BadNumber(s.to_string()));
    }
    let v = Decimal::from_str_exact(body).map_err(|_| ParseError::BadNumber(s.to_string()))?;
    Ok(if neg { -v } else { v })
}

/// A unit symbol as scales print it.
pub(crate) fn unit(s: &str) -> Result<MassUnit, ParseError> {
    match s.trim() {
        "g" | "G" => Ok(MassUnit::G),
        "kg" | "KG" => Ok(MassUnit::Kg),
        "mg" | "MG" => Ok(MassUnit::Mg),
        "ct" | "CT" | "Ct" => Ok(MassUnit::Ct),
        "ozt" | "ozT" | "OZT" | "t" => Ok(MassUnit::Ozt),
        other => Err(ParseError::Unit(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_exact_and_strict() {
        assert_eq!(
            number("+00148.30").map(|d| d.to_string()),
            Ok("148.30".into())
        );
        assert_eq!(number("-  1.5").map(|d| d.to_string()), Ok("-1.5".into()));
        for bad in ["", "+", ".", "1.2.3", "1e3", "12a", "NaN"] {
            assert!(number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn protocols_have_names() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse(), Ok(p));
        }
    }
}

#[cfg(test)]
mod never_panics {
    //! The stable-toolchain companion of the cargo-fuzz target: arbitrary bytes through
    //! every framer and parser give replies or typed errors, never a panic.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            for protocol in Protocol::ALL {
                let _ = protocol.parse(&data, MassUnit::G);
                let mut framer = protocol.framer();
                for frame in framer.push(&data) {
                    let _ = protocol.parse(&frame, MassUnit::G);
                }
            }
        }

        #[test]
        fn near_valid_lines(prefix in "(S S|S D|ST,|US,|OL,|N     |G     |NET|T S|I4 A)?",
                            body in "[ +\\-0-9.]{0,14}",
                            unit in "( g| kg| mg| ct| ozt| lb|  |\\?)?") {
            let line = format!("{prefix}{body}{unit}");
            for protocol in Protocol::ALL {
                let _ = protocol.parse(line.as_bytes(), MassUnit::G);
            }
        }
    }
}
