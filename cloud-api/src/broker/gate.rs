//! The device gate: the embedded broker's front door, where access control happens.
//!
//! rumqttd has no per-topic access control, so devices connect here instead (plain MQTT or
//! TLS). The gate reads the first packet, which must be an MQTT 3.1.1 CONNECT, and lets the
//! device in only if its username is an enrolled, non-revoked device id, its password hashes
//! to the stored broker secret, its client id is `metcon-edge-{device}` and its will (if any)
//! is its own status topic. It then rewrites the login to the internal credentials and relays
//! the connection to rumqttd, checking every packet the device sends: a PUBLISH must be on the
//! device's own `reading`, `live`, `photo` or `status` topic and within that channel's size
//! limit, a SUBSCRIBE only for its own `cmd` and `config` topics. A violation is counted,
//! stored as a rejection, audited, and ends the connection. Revoking a device closes its open
//! connections at once ([`Gate::kick`]). On the way back, rumqttd's PUBACK of a reading or
//! photo is held until ingest has committed that message ([`super::receipts`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use metcon_shared::reading::MAX_ENVELOPE_BYTES;
use metcon_shared::topic::{Channel, DeviceId, Topic};
use rumqttc::mqttbytes::v4::{self, ConnAck, ConnectReturnCode, Login, Packet};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::embedded::Internal;
use super::receipts::{Key, Receipts};
use crate::store::devices::{DeviceState, Rejection};
use crate::store::{NewAudit, Store};

/// Largest status or live message.
const MAX_SMALL: usize = 4096;
/// Largest CONNECT or SUBSCRIBE.
const MAX_CONTROL: usize = 8192;
/// How long a PUBACK waits for ingest's commit before the gate gives up on the connection.
/// It closes it rather than acknowledge: the device then sends its unacknowledged messages
/// again (a message rumqttd lost, or a store that is down for longer), and ingest recognises
/// what it had already stored.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(20);

/// What the gate lets through: the message's weight in the backlog, and for a QoS 1
/// reading or photo its packet id and receipt key (its PUBACK waits for the commit).
#[derive(Debug, Default)]
struct Admitted {
    weight: u64,
    receipt: Option<(u16, Key)>,
}

/// PUBACKs waiting for their commit, by packet id, on one connection.
type Held = std::sync::Mutex<HashMap<u16, (Key, tokio::sync::oneshot::Receiver<()>)>>;

/// Why a connection or packet was refused: the rejection reason code and a sentence.
#[derive(Debug)]
struct Refusal {
    reason: &'static str,
    detail: String,
}

fn refuse(reason: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: detail.into(),
    }
}

pub struct Gate {
    store: Arc<dyn Store>,
    internal: Internal,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_photo: usize,
    /// Open connections per device, woken to close on revocation.
    kicks: Mutex<HashMap<String, Arc<Notify>>>,
    /// Readings and photos relayed but not yet stored by ingest.
    backlog: Arc<super::backlog::Backlog>,
    receipts: Arc<Receipts>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("internal", &self.internal)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// SHA-256 hex of a device's broker password, as stored.
pub fn secret_hash(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// Constant-time comparison, so the time taken does not tell how much of a hash matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Loads a rustls server configuration from PEM files.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("while opening {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("while reading certificates from {}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("while opening {}", key.display()))?,
    ))
    .with_context(|| format!("while reading {}", key.display()))?
    .with_context(|| format!("{} holds no private key", key.display()))?;
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the broker certificate and key do not fit together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The fixed header of an MQTT packet: (packet type, header length, total length).
fn frame_header(buf: &[u8], max: usize) -> Result<Option<(u8, usize, usize)>, Refusal> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    let mut shift = 0;
    for i in 1..5 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        remaining += ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            let total = i + 1 + remaining;
            if total > max {
                return Err(refuse(
                    "oversized",
                    format!("a {total}-byte packet exceeds the limit of {max} bytes"),
                ));
            }
            return Ok(Some((byte1 >> 4, i + 1, total)));
        }
        shift += 7;
    }
    Err(refuse("malformed", "the packet length field is malformed"))
}

/// Reads the next whole packet into `buf` and splits it off.
async fn next_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(u8, usize, Bytes)>, Refusal> {
    loop {
        if let Some((kind, header, total)) = frame_header(buf, max)? {
            if buf.len() >= total {
                return Ok(Some((kind, header, buf.split_to(total).freeze())));
            }
        }
        match r.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

impl Gate {
    pub fn new(
        store: Arc<dyn Store>,
        internal: Internal,
        tls: Option<tokio_rustls::TlsAcceptor>,
        max_photo: usize,
        backlog: Arc<super::backlog::Backlog>,
        receipts: Arc<Receipts>,
    ) -> Gate {
        Gate {
            store,
            internal,
            tls,
            max_photo,
            kicks: Mutex::new(HashMap::new()),
            backlog,
            receipts,
        }
    }

    fn max_packet(&self) -> usize {
        self.max_photo.max(MAX_ENVELOPE_BYTES) + 1024
    }

    /// Closes every open connection of the device (revocation).
    pub fn kick(&self, device: &str) {
        let n = self
            .kicks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device)
            .cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    fn kick_signal(&self, device: &str) -> Arc<Notify> {
        self.kicks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(device.to_string())
            .or_default()
            .clone()
    }

    /// Accepts connections until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "broker gate accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let _ = stream.set_nodelay(true);
            let gate = self.clone();
            tokio::spawn(async move {
                let result = match gate.tls.clone() {
                    Some(acceptor) => {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => gate.handle(tls, peer).await,
                            Ok(Err(e)) => Err(anyhow::anyhow!("TLS handshake failed: {e}")),
                            Err(_) => Err(anyhow::anyhow!("TLS handshake timed out")),
                        }
                    }
                    None => gate.handle(stream, peer).await,
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %format!("{e:#}"), "device connection ended");
                }
            });
        }
    }

    async fn audit_refusal(
        &self,
        device: Option<&str>,
        topic: &str,
        peer: SocketAddr,
        r: &Refusal,
        size: usize,
    ) {
        metrics::counter!("metcon_broker_refusals_total", "reason" => r.reason).increment(1);
        tracing::warn!(%peer, device, reason = r.reason, detail = %r.detail, "broker gate refused");
        let now = OffsetDateTime::now_utc();
        let rejection = Rejection {
            at: now,
            device_id: device.map(str::to_string),
            topic: topic.to_string(),
            reason: r.reason.to_string(),
            detail: r.detail.clone(),
            size: size as u64,
            payload_sha256: String::new(),
            seq: None,
            quarantined: None,
        };
        let audit = NewAudit {
            at: now,
            actor: device.map_or_else(|| "anonymous".to_string(), |d| format!("device:{d}")),
            action: "broker_access_refused".into(),
            target: device.map_or_else(|| "broker".to_string(), |d| format!("device:{d}")),
            details: json!({ "reason": r.reason, "detail": r.detail, "topic": topic }),
            ip: Some(peer.ip().to_string()),
        };
        if let Err(e) = self.store.record_rejections(&[rejection], &[audit]).await {
            tracing::error!(error = %e, "cannot record a broker refusal");
        }
    }

    /// Checks a CONNECT; returns the device id.
    async fn authenticate(
        &self,
        c: &v4::Connect,
    ) -> Result<DeviceId, (ConnectReturnCode, Refusal)> {
        let bad = |code, reason, detail: String| Err((code, refuse(reason, detail)));
        let Some(login) = &c.login else {
            return bad(
                ConnectReturnCode::NotAuthorized,
                "no_login",
                "a device must log in with its device id and broker password".into(),
            );
        };
        let Ok(device) = DeviceId::parse(&login.username) else {
            return bad(
                ConnectReturnCode::BadUserNamePassword,
                "unknown_device",
                format!("{:?} is not a device id", login.username),
            );
        };
        let record = match self.store.device(device.as_str()).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                return bad(
                    ConnectReturnCode::BadUserNamePassword,
                    "unknown_device",
                    format!("device {device} is not registered"),
                )
            }
            Err(e) => {
                return bad(
                    ConnectReturnCode::ServiceUnavailable,
                    "store_unavailable",
                    e.to_string(),
                )
            }
        };
        match record.state {
            DeviceState::Active => {}
            DeviceState::Revoked => {
                return bad(
                    ConnectReturnCode::NotAuthorized,
                    "revoked",
                    format!("device {device} is revoked"),
                )
            }
            DeviceState::Pending => {
                return bad(
                    ConnectReturnCode::NotAuthorized,
                    "not_enrolled",
                    format!("device {device} has not enrolled"),
                )
            }
        }
        let ok = record
            .broker_secret_hash
            .as_deref()
            .is_some_and(|h| same(h, &secret_hash(&login.password)));
        if !ok {
            return bad(
                ConnectReturnCode::BadUserNamePassword,
                "bad_password",
                format!("wrong broker password for device {device}"),
            );
        }
        if c.client_id != format!("metcon-edge-{device}") {
            return bad(
                ConnectReturnCode::BadClientId,
                "bad_client_id",
                format!("device {device} must connect as client metcon-edge-{device}"),
            );
        }
        if let Some(will) = &c.last_will {
            if will.topic != Topic::new(device.clone(), Channel::Status).to_string() {
                return bad(
                    ConnectReturnCode::NotAuthorized,
                    "acl_violation",
                    format!(
                        "a will on {:?} is not the device's status topic",
                        will.topic
                    ),
                );
            }
        }
        Ok(device)
    }

    /// Whether an authenticated device may send this packet, and what it means for the
    /// backlog and the receipts (see [`Admitted`]).
    fn check(
        &self,
        device: &DeviceId,
        kind: u8,
        header: usize,
        frame: &Bytes,
    ) -> Result<Admitted, (String, Refusal)> {
        match kind {
            // PUBLISH: topic and size
            3 => {
                let body = &frame[header..];
                let (Some(&hi), Some(&lo)) = (body.first(), body.get(1)) else {
                    return Err((
                        String::new(),
                        refuse("malformed", "a PUBLISH without a topic"),
                    ));
                };
                let len = usize::from(hi) << 8 | usize::from(lo);
                let topic = body
                    .get(2..2 + len)
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .ok_or_else(|| {
                        (
                            String::new(),
                            refuse("malformed", "a PUBLISH topic that is not UTF-8"),
                        )
                    })?
                    .to_string();
                let qos = (frame[0] >> 1) & 0b11;
                let payload_at = 2 + len + if qos > 0 { 2 } else { 0 };
                let payload = body.len().saturating_sub(payload_at);
                let t = match Topic::parse(&topic) {
                    Ok(t) => t,
                    Err(e) => {
                        return Err((
                            topic,
                            refuse(
                                "acl_violation",
                                format!("publish outside the device topics: {e}"),
                            ),
                        ))
                    }
                };
                if t.device != *device {
                    return Err((
                        topic,
                        refuse(
                            "acl_violation",
                            format!("device {device} published on device {}'s topic", t.device),
                        ),
                    ));
                }
                let limit = match t.channel {
                    Channel::Reading => MAX_ENVELOPE_BYTES,
                    Channel::Photo => self.max_photo,
                    Channel::Live | Channel::Status => MAX_SMALL,
                    Channel::Cmd | Channel::Config => {
                        return Err((
                            topic,
                            refuse(
                                "acl_violation",
                                "a device may not publish commands or configuration",
                            ),
                        ))
                    }
                };
                if payload > limit {
                    return Err((
                        topic,
                        refuse(
                            "oversized",
                            format!(
                                "a {payload}-byte payload exceeds the {limit}-byte limit of {}",
                                t.channel
                            ),
                        ),
                    ));
                }
                let weight = super::backlog::weight(t.channel);
                let receipt = match (qos, body.get(2 + len..payload_at)) {
                    (1, Some(&[hi, lo])) if weight > 0 => Some((
                        u16::from_be_bytes([hi, lo]),
                        self.receipts
                            .key(&topic, body.get(payload_at..).unwrap_or_default()),
                    )),
                    _ => None,
                };
                Ok(Admitted { weight, receipt })
            }
            // SUBSCRIBE: own cmd and config only
            8 => {
                let mut b = BytesMut::from(&frame[..]);
                let filters = match v4::read(&mut b, MAX_CONTROL) {
                    Ok(Packet::Subscribe(s)) => s.filters,
                    _ => {
                        return Err((
                            String::new(),
                            refuse("malformed", "an unreadable SUBSCRIBE"),
                        ))
                    }
                };
                let allowed = [
                    Topic::new(device.clone(), Channel::Cmd).to_string(),
                    Topic::new(device.clone(), Channel::Config).to_string(),
                ];
                for f in filters {
                    if !allowed.contains(&f.path) {
                        return Err((
                            f.path.clone(),
                            refuse(
                                "acl_violation",
                                format!("device {device} may not subscribe to {:?}", f.path),
                            ),
                        ));
                    }
                }
                Ok(Admitted::default())
            }
            1 => Err((String::new(), refuse("malformed", "a second CONNECT"))),
            // acks, unsubscribe, ping, disconnect
            4..=7 | 10 | 12 | 14 => Ok(Admitted::default()),
            other => Err((
                String::new(),
                refuse("malformed", format!("packet type {other} from a client")),
            )),
        }
    }

    async fn handle<S>(self: Arc<Self>, stream: S, peer: SocketAddr) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (mut cr, mut cw) = tokio::io::split(stream);
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let first = tokio::time::timeout(
            Duration::from_secs(10),
            next_frame(&mut cr, &mut buf, MAX_CONTROL),
        )
        .await
        .context("no CONNECT within 10 s")?;
        let (kind, _, frame) = match first {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(r) => {
                self.audit_refusal(None, "", peer, &r, 0).await;
                bail!("{}", r.detail);
            }
        };
        let connect = match (kind, v4::read(&mut BytesMut::from(&frame[..]), MAX_CONTROL)) {
            (1, Ok(Packet::Connect(c))) => c,
            _ => {
                // MQTT 5 or garbage: refuse the protocol level and close
                let mut out = BytesMut::new();
                let _ =
                    ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false).write(&mut out);
                let _ = cw.write_all(&out).await;
                let r = refuse("malformed", "the first packet is not an MQTT 3.1.1 CONNECT");
                self.audit_refusal(None, "", peer, &r, frame.len()).await;
                bail!("{}", r.detail);
            }
        };
        let device = match self.authenticate(&connect).await {
            Ok(d) => d,
            Err((code, r)) => {
                let mut out = BytesMut::new();
                let _ = ConnAck::new(code, false).write(&mut out);
                let _ = cw.write_all(&out).await;
                let name = connect.login.as_ref().map(|l| l.username.as_str());
                self.audit_refusal(name.filter(|n| DeviceId::parse(n).is_ok()), "", peer, &r, 0)
                    .await;
                bail!("{}", r.detail);
            }
        };
        let kick = self.kick_signal(device.as_str());
        let kicked = kick.notified();
        tokio::pin!(kicked);
        kicked.as_mut().enable();
        // a revocation that raced with this login
        if !matches!(self.store.device(device.as_str()).await, Ok(Some(d)) if d.state == DeviceState::Active)
        {
            bail!("device {device} was revoked while logging in");
        }
        let mut relayed = connect.clone();
        relayed.login = Some(Login::new(
            self.internal.username.clone(),
            self.internal.password.clone(),
        ));
        let mut out = BytesMut::new();
        relayed
            .write(&mut out)
            .context("while relaying the CONNECT")?;
        let broker = TcpStream::connect(self.internal.addr)
            .await
            .context("while reaching the embedded broker")?;
        let _ = broker.set_nodelay(true);
        let (mut br, mut bw) = broker.into_split();
        bw.write_all(&out).await?;
        tracing::info!(%device, %peer, "device connected");
        metrics::gauge!("metcon_broker_devices_connected").increment(1.0);

        let max = self.max_packet();
        let held = Held::default();
        let hold = |a: &Admitted| {
            if let Some((pkid, key)) = a.receipt {
                let wait = self.receipts.expect(key);
                let old = held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(pkid, (key, wait));
                // a packet id reused before its PUBACK: the device gave up on the first
                if let Some((old, _)) = old {
                    self.receipts.forget(old);
                }
            }
        };
        let up = async {
            let mut pending = BytesMut::new();
            loop {
                let (kind, header, frame) = match next_frame(&mut cr, &mut buf, max).await {
                    Ok(Some(f)) => f,
                    Ok(None) => return Ok(()),
                    Err(r) => return Err((String::new(), r, 0)),
                };
                let mut ingested = match self.check(&device, kind, header, &frame) {
                    Ok(a) => {
                        hold(&a);
                        a.weight
                    }
                    Err((topic, r)) => return Err((topic, r, frame.len())),
                };
                pending.extend_from_slice(&frame);
                // relay everything already buffered in one write
                while let Ok(Some((kind, header, total))) = frame_header(&buf, max) {
                    if buf.len() < total {
                        break;
                    }
                    let frame = buf.split_to(total).freeze();
                    match self.check(&device, kind, header, &frame) {
                        Ok(a) => {
                            hold(&a);
                            ingested += a.weight;
                        }
                        Err((topic, r)) => {
                            self.backlog.admit(ingested).await;
                            let _ = bw.write_all(&pending).await;
                            return Err((topic, r, frame.len()));
                        }
                    }
                    pending.extend_from_slice(&frame);
                }
                // Wait for ingest to catch up before the broker's log could overflow; the
                // device's socket is not read meanwhile (see `backlog`).
                self.backlog.admit(ingested).await;
                if bw.write_all(&pending).await.is_err() {
                    return Ok(());
                }
                pending.clear();
            }
        };
        let down = self.relay_down(&mut br, &mut cw, &held, &device);
        let outcome = tokio::select! {
            r = up => r,
            _ = down => Ok(()),
            _ = &mut kicked => {
                tracing::info!(%device, "device connection closed: revoked");
                Ok(())
            }
        };
        metrics::gauge!("metcon_broker_devices_connected").decrement(1.0);
        // PUBACKs never sent: the device sends those messages again when it reconnects.
        for (_, (key, wait)) in held.into_inner().unwrap_or_else(|p| p.into_inner()) {
            drop(wait);
            self.receipts.forget(key);
        }
        if let Err((topic, r, size)) = outcome {
            self.audit_refusal(Some(device.as_str()), &topic, peer, &r, size)
                .await;
            bail!("{}", r.detail);
        }
        Ok(())
    }
}

impl Gate {
    /// Relays what rumqttd sends the device, in order, holding each PUBACK of a reading or
    /// photo until ingest has committed it. Returns when either side closes, or when a
    /// commit does not come within [`RECEIPT_TIMEOUT`].
    async fn relay_down<R, W>(&self, br: &mut R, cw: &mut W, held: &Held, device: &DeviceId)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut out = BytesMut::with_capacity(8 * 1024);
        loop {
            match br.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // rumqttd's packets are trusted; the bound only stops a runaway length
            while let Ok(Some((kind, _, total))) = frame_header(&buf, usize::MAX) {
                if buf.len() < total {
                    break;
                }
                let frame = buf.split_to(total);
                if kind == 4 && total == 4 {
                    let pkid = u16::from_be_bytes([frame[2], frame[3]]);
                    let wait = held.lock().unwrap_or_else(|p| p.into_inner()).remove(&pkid);
                    if let Some((key, mut wait)) = wait {
                        if wait.try_recv().is_err() {
                            // what is ready goes now; the rest stays behind this PUBACK
                            if !out.is_empty() {
                                if cw.write_all(&out).await.is_err() {
                                    return;
                                }
                                out.clear();
                            }
                            let committed = tokio::time::timeout(RECEIPT_TIMEOUT, wait).await;
                            if !matches!(committed, Ok(Ok(()))) {
                                self.receipts.forget(key);
                                metrics::counter!("metcon_broker_receipt_timeouts_total")
                                    .increment(1);
                                tracing::warn!(%device, pkid, "ingest did not commit a message in time; closing the connection so the device sends it again");
                                return;
                            }
                        }
                    }
                }
                out.extend_from_slice(&frame);
            }
            if !out.is_empty() {
                if cw.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_are_read_and_bounded() {
        assert_eq!(frame_header(&[], 100).ok(), Some(None));
        assert_eq!(frame_header(&[0x30], 100).ok(), Some(None));
        assert_eq!(frame_header(&[0x30, 0x05], 100).ok(), Some(Some((3, 2, 7))));
        // 321 = 0xC1 0x02
        assert_eq!(
            frame_header(&[0x30, 0xC1, 0x02], 1000).ok(),
            Some(Some((3, 3, 324)))
        );
        assert!(frame_header(&[0x30, 0xC1, 0x02], 100).is_err());
        assert!(frame_header(&[0x30, 0xff, 0xff, 0xff, 0xff], usize::MAX).is_err());
    }

    #[test]
    fn secrets_compare_in_constant_time_and_exactly() {
        let h = secret_hash("pw");
        assert!(same(&h, &secret_hash("pw")));
        assert!(!same(&h, &secret_hash("pX")));
        assert!(!same(&h, "short"));
    }
}
