//! The scale loop: keep the link open, poll, frame, parse, report.
//!
//! One task per scale. It opens the transport (retrying with backoff when the port is
//! missing or the converter refuses), asks for the serial number where the protocol can,
//! polls at the configured interval (polled protocols), and sends every parsed reply to the
//! agent as a [`Sample`]. Tare and zero commands from the cloud arrive on a channel. A scale
//! that stays silent is reported disconnected; EOF or an I/O error reopens the link.

use std::time::Duration;

use metcon_shared::mass::MassUnit;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::transport::{self, Link};
use super::{escape, ParseError, Protocol, Reply};

/// Driver settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub protocol: Protocol,
    pub link: Link,
    pub poll: Duration,
    pub fallback_unit: MassUnit,
    /// No bytes for this long: the scale counts as disconnected.
    pub silence: Duration,
}

/// A cloud command for the scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleCommand {
    Tare,
    Zero,
}

/// One parsed reply with where and when it came.
#[derive(Debug, Clone)]
pub struct Sample {
    pub reply: Reply,
    /// The frame, escaped, for the signed reading.
    pub raw: String,
    pub at: std::time::Instant,
    pub time: OffsetDateTime,
}

/// What the driver tells the agent.
#[derive(Debug, Clone)]
pub enum DriverEvent {
    Sample(Sample),
    Connected(bool),
    Error(ParseError),
}

/// Runs until `shutdown` turns true.
pub async fn run(
    cfg: DriverConfig,
    events: mpsc::Sender<DriverEvent>,
    mut commands: mpsc::Receiver<ScaleCommand>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut reported_down = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let io = match transport::open(&cfg.link).await {
            Ok(io) => io,
            Err(e) => {
                if !reported_down {
                    tracing::warn!(error = %e, "scale link not available; retrying");
                    let _ = events.send(DriverEvent::Connected(false)).await;
                    reported_down = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        tracing::info!(link = %cfg.link.describe(), protocol = %cfg.protocol, "scale link open");
        let (mut rd, mut wr) = tokio::io::split(io);
        if let Some(cmd) = cfg.protocol.serial_command() {
            let _ = wr.write_all(cmd).await;
        }
        let mut framer = cfg.protocol.framer();
        let mut poll = tokio::time::interval(cfg.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let poll_cmd = cfg.protocol.poll_command();
        let mut last_rx = Instant::now();
        let mut connected = false;
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    if let Some(cmd) = poll_cmd {
                        if wr.write_all(cmd).await.is_err() {
                            break;
                        }
                    }
                    if connected && last_rx.elapsed() > cfg.silence && cfg.protocol != Protocol::PrintLine {
                        connected = false;
                        tracing::warn!("scale silent for {:?}", cfg.silence);
                        let _ = events.send(DriverEvent::Connected(false)).await;
                        if matches!(cfg.link, Link::Tcp { .. }) {
                            break; // a converter that went quiet is reconnected
                        }
                    }
                }
                read = rd.read(&mut buf) => {
                    let n = match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    last_rx = Instant::now();
                    if !connected {
                        connected = true;
                        reported_down = false;
                        let _ = events.send(DriverEvent::Connected(true)).await;
                    }
                    for frame in framer.push(&buf[..n]) {
                        match cfg.protocol.parse(&frame, cfg.fallback_unit) {
                            Ok(reply) => {
                                let sample = Sample {
                                    raw: escape(&frame),
                                    at: std::time::Instant::now(),
                                    time: OffsetDateTime::now_utc(),
                                    reply,
                                };
                                // plain weights may be dropped when the agent is behind;
                                // prints, tares and serial numbers may not
                                if matches!(sample.reply, Reply::Weight(_)) {
                                    let _ = events.try_send(DriverEvent::Sample(sample));
                                } else if events.send(DriverEvent::Sample(sample)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "scale frame not usable");
                                let _ = events.try_send(DriverEvent::Error(e));
                            }
                        }
                    }
                }
                cmd = commands.recv() => {
                    let bytes = match cmd {
                        Some(ScaleCommand::Tare) => cfg.protocol.tare_command(),
                        Some(ScaleCommand::Zero) => cfg.protocol.zero_command(),
                        None => return,
                    };
                    match bytes {
                        Some(b) => {
                            if wr.write_all(b).await.is_err() {
                                break;
                            }
                        }
                        None => tracing::warn!(protocol = %cfg.protocol, "this protocol cannot tare or zero remotely"),
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
        if connected {
            let _ = events.send(DriverEvent::Connected(false)).await;
        }
        tracing::warn!("scale link closed; reopening");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
    }
}
