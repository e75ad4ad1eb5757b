//! The scale protocols the simulator speaks, one module each.
//!
//! A [`Protocol`] turns host bytes into response bytes, may emit output on its own at every
//! tick (continuous modes, `SIR`), and reacts to the Print key. Framing (CR LF, field widths,
//! status letters) follows the manufacturers' documented formats; `hardware/README.md` lists
//! them. Protocols never do I/O: the link layer moves their bytes.

use std::time::Instant;

use clap::ValueEnum;

use crate::profile::Scale;

pub mod a_and_d;
pub mod mt_sics;
pub mod ohaus;
pub mod print_line;
pub mod sbi;
pub mod toledo;

/// The protocols, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    MtSics,
    Sbi,
    AAndD,
    Ohaus,
    Toledo,
    PrintLine,
}

/// A scale protocol's behaviour. See the module docs.
pub trait Protocol: Send + std::fmt::Debug {
    /// Bytes from the host; returns the response bytes.
    fn input(&mut self, bytes: &[u8], scale: &mut Scale, now: Instant) -> Vec<u8>;
    /// Called at the configured output rate; continuous and repeat modes answer here.
    fn tick(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8>;
    /// The Print key on the scale.
    fn print(&mut self, scale: &mut Scale, now: Instant) -> Vec<u8>;
}

pub fn new(kind: Kind, sbi_22: bool) -> Box<dyn Protocol> {
    match kind {
        Kind::MtSics => Box::new(mt_sics::MtSics::default()),
        Kind::Sbi => Box::new(sbi::Sbi::new(sbi_22)),
        Kind::AAndD => Box::new(a_and_d::AAndD::default()),
        Kind::Ohaus => Box::new(ohaus::Ohaus::default()),
        Kind::Toledo => Box::new(toledo::Toledo::default()),
        Kind::PrintLine => Box::new(print_line::PrintLine),
    }
}

/// Collects host bytes into CR/LF-terminated commands.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Feeds bytes; returns every complete command (without CR/LF, empty ones skipped).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if !self.buf.is_empty() {
                    out.push(std::mem::take(&mut self.buf));
                }
            } else if self.buf.len() < 256 {
                self.buf.push(b);
            }
        }
        out
    }
}
