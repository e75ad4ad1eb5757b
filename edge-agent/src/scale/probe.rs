//! Finds which protocol a scale speaks by asking it.
//!
//! First it listens: a Toledo continuous indicator talks without being asked. Then it sends
//! each protocol's harmless weight request (MT-SICS `SI`, A&D `Q`, Ohaus `IP`, SBI `ESC P`)
//! and accepts the first that yields a well-formed reply of that protocol. A reply that is
//! only an error line (`ES`) does not count. A print-line scale only talks when someone
//! presses Print, so it cannot be probed and must be configured.

use std::time::Duration;

use metcon_shared::mass::MassUnit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::transport::{self, Link, ScaleIo, TransportError};
use super::{escape, Protocol, Reply};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub protocol: Protocol,
    /// The frame that convinced it.
    pub evidence: String,
}

/// Collects frames for `wait` and returns the first one `protocol` parses to a real reply.
async fn listen(io: &mut Box<dyn ScaleIo>, protocol: Protocol, wait: Duration) -> Option<String> {
    let mut framer = protocol.framer();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let n = match tokio::time::timeout(left, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => return None,
            Err(_) => return None,
        };
        for frame in framer.push(&buf[..n]) {
            if let Ok(reply) = protocol.parse(&frame, MassUnit::G) {
                if matches!(
                    reply,
                    Reply::Weight(_) | Reply::Printed(_) | Reply::Overload | Reply::Underload
                ) {
                    return Some(escape(&frame));
                }
            }
        }
    }
}

/// Probes the scale on `link`. `Ok(None)`: nothing recognisable answered.
pub async fn probe(link: &Link, wait: Duration) -> Result<Option<Found>, TransportError> {
    let mut io = transport::open(link).await?;
    if let Some(evidence) = listen(&mut io, Protocol::Toledo, wait).await {
        return Ok(Some(Found {
            protocol: Protocol::Toledo,
            evidence,
        }));
    }
    for protocol in [
        Protocol::MtSics,
        Protocol::AAndD,
        Protocol::Ohaus,
        Protocol::Sbi,
    ] {
        let Some(cmd) = protocol.poll_command() else {
            continue;
        };
        // A bare CR LF ends whatever a previous probe left in the scale's input buffer.
        if io.write_all(b"\r\n").await.is_err() || io.write_all(cmd).await.is_err() {
            return Ok(None);
        }
        let _ = io.flush().await;
        if let Some(evidence) = listen(&mut io, protocol, wait).await {
            return Ok(Some(Found { protocol, evidence }));
        }
    }
    Ok(None)
}
