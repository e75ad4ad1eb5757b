//! The running simulator: one scale, one protocol and the line it talks on.
//!
//! [`Sim`] sits behind a mutex shared by the link reader, the ticker, the control socket and
//! the script. It applies the line faults (disconnect, garbage, wrong baud rate) to whatever
//! the protocol says, and never blocks on a host that does not read: output that cannot be
//! written at once is lost, as on a real serial line.

use std::time::{Duration, Instant};

use crate::control::Command;
use crate::profile::Scale;
use crate::protocol::Protocol;

/// Where output goes, and whether the host's line settings match the scale's.
pub trait LinkOut: Send + std::fmt::Debug {
    /// Writes what it can without blocking.
    fn send(&mut self, bytes: &[u8]);
    /// The host's baud rate, when the link has one (a pty does; TCP does not).
    fn host_baud(&self) -> Option<u32>;
    /// Drops the connection (TCP) when the scale is "unplugged".
    fn drop_connection(&mut self) {}
    /// Identifies a connection, so a finished reader only clears its own.
    fn id(&self) -> u64 {
        0
    }
}

#[derive(Debug)]
pub struct Sim {
    pub scale: Scale,
    pub proto: Box<dyn Protocol>,
    pub out: Option<Box<dyn LinkOut>>,
    pub connected: bool,
    pub baud: u32,
    pub autoprint: Option<(Duration, Instant)>,
}

impl Sim {
    pub fn new(scale: Scale, proto: Box<dyn Protocol>, baud: u32) -> Sim {
        Sim {
            scale,
            proto,
            out: None,
            connected: true,
            baud,
            autoprint: None,
        }
    }

    fn baud_ok(&self) -> bool {
        match self.out.as_ref().and_then(|o| o.host_baud()) {
            Some(host) => host == self.baud,
            None => true,
        }
    }

    /// Sends protocol output through the line faults.
    pub fn emit(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() || !self.connected {
            return;
        }
        let bytes = if self.baud_ok() {
            bytes
        } else {
            // a receiver at the wrong rate sees framing errors: high, meaningless bytes
            self.scale.garbage(bytes.len())
        };
        if let Some(out) = self.out.as_mut() {
            out.send(&bytes);
        }
    }

    pub fn on_input(&mut self, bytes: &[u8], now: Instant) {
        if !self.connected || !self.baud_ok() {
            return;
        }
        let reply = self.proto.input(bytes, &mut self.scale, now);
        self.emit(reply);
    }

    pub fn on_tick(&mut self, now: Instant) {
        let out = self.proto.tick(&mut self.scale, now);
        self.emit(out);
        if let Some((every, last)) = self.autoprint {
            if now.saturating_duration_since(last) >= every {
                self.autoprint = Some((every, now));
                let out = self.proto.print(&mut self.scale, now);
                self.emit(out);
            }
        }
    }

    /// Applies a control command; the answer is the text after `ok ` or `err `.
    /// `Wait` is the caller's business (it must not hold the lock while waiting).
    pub fn apply(&mut self, cmd: &Command, now: Instant) -> Result<String, String> {
        match cmd {
            Command::Set(v) => self.scale.set_load(*v, now),
            Command::Settle(d) => self.scale.settle = *d,
            Command::Noise(n) => self.scale.noise = *n,
            Command::Drift(d) => self.scale.drift_per_s = *d,
            Command::Overload => {
                self.scale.forced_overload = true;
                self.scale.forced_underload = false;
            }
            Command::Underload => {
                self.scale.forced_underload = true;
                self.scale.forced_overload = false;
            }
            Command::Normal => {
                self.scale.forced_overload = false;
                self.scale.forced_underload = false;
            }
            Command::Disconnect => {
                self.connected = false;
                if let Some(o) = self.out.as_mut() {
                    o.drop_connection();
                }
            }
            Command::Reconnect => self.connected = true,
            Command::Garbage(n) => {
                let g = self.scale.garbage(*n);
                if self.connected {
                    if let Some(out) = self.out.as_mut() {
                        out.send(&g);
                    }
                }
            }
            Command::Baud(b) => self.baud = *b,
            Command::Print => {
                let out = self.proto.print(&mut self.scale, now);
                self.emit(out);
            }
            Command::AutoPrint(d) => self.autoprint = d.map(|d| (d, now)),
            Command::Tare => {
                self.scale.tare(now).map_err(|e| e.to_string())?;
            }
            Command::Zero => self.scale.zero(now).map_err(|e| e.to_string())?,
            Command::Status => {
                let s = self.scale.sample(now);
                return Ok(format!(
                    "net={} gross={} tare={} unit={} stable={} overload={} underload={} connected={}",
                    s.net, s.gross, s.tare, s.unit, s.stable, s.overload, s.underload, self.connected
                ));
            }
            Command::Wait(_) => {}
        }
        Ok(String::new())
    }
}
