//! The ingest pipeline: decode → verify the signature against the device's registered,
//! non-revoked key → reject replays → store idempotently on (device, seq) → hand stable
//! readings to the binder.
//!
//! Messages are taken in groups (as many as are waiting, up to `ingest.max_batch`, waiting at
//! most `ingest.max_wait_ms` for the first group to fill): their signatures are checked with
//! one Ed25519 batch verification (falling back to one by one to find a bad one), the
//! readings are stored in one transaction (group commit) together with the rejections and
//! their audit records, and only then are the messages acknowledged: to an external broker,
//! which persists them and delivers again after a crash; through the embedded broker, whose
//! log is memory, to the devices themselves (the gate holds their PUBACKs until the commit,
//! `broker::receipts`; rumqttd is acknowledged at once). A crash before the commit therefore
//! loses nothing: the broker or the device sends again, and re-delivered readings are
//! recognised as duplicates. A bad message never stops the pipeline.

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use metcon_shared::reading::{
    Envelope, KeyRotation, Measurement, Reading, Signed, MAX_ENVELOPE_BYTES,
};
use metcon_shared::topic::{Channel, Topic};
use rumqttc::{AsyncClient, Publish};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::blobs::sha256_hex;
use crate::http::AppState;
use crate::live::LiveEvent;
use crate::store::devices::{DeviceKeyRecord, DeviceState, InsertOutcome, NewReading, Rejection};
use crate::store::{NewAudit, StoreError};

/// A message taken off the broker, waiting to be acknowledged.
#[derive(Debug)]
pub struct Item {
    pub publish: Publish,
    pub received: Instant,
    pub received_at: OffsetDateTime,
}

/// What one group produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stored: Vec<Reading>,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

fn rejection(
    item_topic: &str,
    device: Option<&str>,
    payload: &[u8],
    reason: &'static str,
    detail: String,
    at: OffsetDateTime,
) -> Rejection {
    Rejection {
        at,
        device_id: device.map(str::to_string),
        topic: item_topic.to_string(),
        reason: reason.to_string(),
        detail,
        size: payload.len() as u64,
        payload_sha256: sha256_hex(payload),
        seq: None,
        quarantined: None,
    }
}

fn rejection_audit(r: &Rejection) -> NewAudit {
    NewAudit {
        at: r.at,
        actor: r
            .device_id
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), |d| format!("device:{d}")),
        action: "reading_rejected".into(),
        target: r
            .device_id
            .as_ref()
            .map_or_else(|| format!("topic:{}", r.topic), |d| format!("device:{d}")),
        details: json!({
            "reason": r.reason, "detail": r.detail, "topic": r.topic, "seq": r.seq,
            "size": r.size, "payload_sha256": r.payload_sha256,
        }),
        ip: None,
    }
}

/// A reading or rotation whose signature is still to be checked.
#[derive(Debug)]
struct Pending {
    topic: String,
    device: String,
    bytes: Vec<u8>,
    envelope: Envelope,
    signed: Signed,
    key: VerifyingKey,
    received_at: OffsetDateTime,
}

/// Checks every signature; one batch verification when all are good.
fn verify_all(pending: &[Pending]) -> Vec<bool> {
    if pending.is_empty() {
        return Vec::new();
    }
    let msgs: Vec<&[u8]> = pending.iter().map(|p| p.envelope.to_be_signed()).collect();
    let sigs: Vec<Signature> = pending.iter().map(|p| *p.envelope.signature()).collect();
    let keys: Vec<VerifyingKey> = pending.iter().map(|p| p.key).collect();
    if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
        return vec![true; pending.len()];
    }
    pending
        .iter()
        .map(|p| p.envelope.verify(&p.key).is_ok())
        .collect()
}

/// A `reading` message as taken off the broker: topic, payload, time received.
pub type Message = (String, Vec<u8>, OffsetDateTime);

/// A group's messages decoded, matched with their devices' keys and their signatures
/// checked: what [`commit`] stores.
#[derive(Debug)]
pub struct Checked {
    /// Refused before the signature check (topic, size, format, device, key).
    rejected: Vec<Rejection>,
    /// Each entry, and whether its signature verified with the key it was checked against.
    verified: Vec<(Pending, bool)>,
}

/// Decodes, verifies and stores one group of `reading` messages.
pub async fn process(state: &AppState, messages: &[Message]) -> Result<Outcome, StoreError> {
    let checked = check(state, messages).await?;
    commit(state, checked).await
}

/// The first stage: decode, find each device's key, verify the signatures (one batch
/// verification, on a blocking thread). Reads the device directory; writes nothing, so the
/// pipeline checks the next group while the one before is being committed.
pub async fn check(state: &AppState, messages: &[Message]) -> Result<Checked, StoreError> {
    let mut out = Outcome::default();
    let mut pending = Vec::with_capacity(messages.len());
    for (topic, bytes, at) in messages {
        let device = Topic::parse(topic).ok().map(|t| t.device.to_string());
        let dev = device.as_deref();
        let reject = |reason, detail: String| rejection(topic, dev, bytes, reason, detail, *at);
        let Some(device) = device.clone() else {
            out.rejected.push(reject(
                "bad_topic",
                format!("{topic:?} is not a device topic"),
            ));
            continue;
        };
        if bytes.len() > MAX_ENVELOPE_BYTES {
            out.rejected.push(reject(
                "oversized",
                format!("{} bytes; the limit is {MAX_ENVELOPE_BYTES}", bytes.len()),
            ));
            continue;
        }
        let envelope = match Envelope::parse(bytes) {
            Ok(e) => e,
            Err(e) => {
                out.rejected.push(reject("malformed", e.to_string()));
                continue;
            }
        };
        if envelope.device().as_str() != device {
            out.rejected.push(reject(
                "device_mismatch",
                format!(
                    "signed by {} but published on {device}'s topic",
                    envelope.device()
                ),
            ));
            continue;
        }
        // Decoded before the signature check only to learn the sequence number, which picks
        // the key; nothing else is used until the signature verifies.
        let signed = match envelope.open() {
            Ok(s) => s,
            Err(e) => {
                out.rejected.push(reject("malformed", e.to_string()));
                continue;
            }
        };
        let auth = match state.directory.get(state.store.as_ref(), &device).await? {
            Some(a) => a,
            None => {
                out.rejected.push(reject(
                    "unknown_device",
                    format!("device {device} is not registered"),
                ));
                continue;
            }
        };
        match auth.state {
            DeviceState::Active => {}
            DeviceState::Revoked => {
                out.rejected
                    .push(reject("revoked", format!("device {device} is revoked")));
                continue;
            }
            DeviceState::Pending => {
                out.rejected.push(reject(
                    "not_enrolled",
                    format!("device {device} has not enrolled"),
                ));
                continue;
            }
        }
        let Some(key) = auth.key_for(signed.seq()).copied() else {
            out.rejected.push(reject(
                "unknown_key",
                format!("no key of {device} covers sequence {}", signed.seq()),
            ));
            continue;
        };
        pending.push(Pending {
            topic: topic.clone(),
            device,
            bytes: bytes.clone(),
            envelope,
            signed,
            key,
            received_at: *at,
        });
    }

    let (pending, verified) = verify_in_parallel(pending)
        .await
        .map_err(|e| StoreError::Backend(format!("signature verification stopped: {e}")))?;
    Ok(Checked {
        rejected: out.rejected,
        verified: pending.into_iter().zip(verified).collect(),
    })
}

/// Verifies on blocking threads, in two halves at once when there are enough signatures to
/// be worth it: the machine has two cores and verification is most of a group's CPU.
async fn verify_in_parallel(
    mut pending: Vec<Pending>,
) -> Result<(Vec<Pending>, Vec<bool>), tokio::task::JoinError> {
    const SPLIT_ABOVE: usize = 32;
    if pending.len() <= SPLIT_ABOVE {
        return tokio::task::spawn_blocking(move || {
            let v = verify_all(&pending);
            (pending, v)
        })
        .await;
    }
    let back = pending.split_off(pending.len() / 2);
    let a = tokio::task::spawn_blocking(move || {
        let v = verify_all(&pending);
        (pending, v)
    });
    let b = tokio::task::spawn_blocking(move || {
        let v = verify_all(&back);
        (back, v)
    });
    let ((mut pending, mut verified), (back, v)) = (a.await?, b.await?);
    pending.extend(back);
    verified.extend(v);
    Ok((pending, verified))
}

/// A signature that did not verify with the key it was checked against may verify with
/// the key the directory has now: a key rotation stored by the group committed while this
/// one was being checked.
async fn verifies_with_key_now(state: &AppState, p: &Pending) -> Result<bool, StoreError> {
    let Some(auth) = state.directory.get(state.store.as_ref(), &p.device).await? else {
        return Ok(false);
    };
    Ok(match auth.key_for(p.signed.seq()) {
        Some(k) if *k != p.key => p.envelope.verify(k).is_ok(),
        _ => false,
    })
}

/// The second stage: stores the verified readings in one transaction (group commit), the
/// rejections with their audit records, and registers key rotations.
pub async fn commit(state: &AppState, checked: Checked) -> Result<Outcome, StoreError> {
    let mut out = Outcome {
        rejected: checked.rejected,
        ..Outcome::default()
    };
    let mut readings = Vec::new();
    let mut rotations = Vec::new();
    for (p, ok) in checked.verified {
        let ok = ok || verifies_with_key_now(state, &p).await?;
        if !ok {
            let mut r = rejection(
                &p.topic,
                Some(&p.device),
                &p.bytes,
                "bad_signature",
                format!(
                    "entry {} does not verify with the registered key",
                    p.signed.seq()
                ),
                p.received_at,
            );
            r.seq = Some(p.signed.seq());
            // kept for a key rotation that may not have arrived yet
            r.quarantined = Some(p.bytes);
            out.rejected.push(r);
            continue;
        }
        match p.signed {
            Signed::Reading(reading) => readings.push(NewReading {
                reading,
                envelope: p.bytes,
                received_at: p.received_at,
            }),
            Signed::KeyRotation(k) => rotations.push((k, p.topic, p.bytes, p.received_at)),
        }
    }

    let outcomes = state.store.insert_readings(&readings).await?;
    for (n, o) in readings.into_iter().zip(outcomes) {
        match o {
            InsertOutcome::Inserted => out.stored.push(n.reading),
            InsertOutcome::Duplicate => out.duplicates += 1,
            InsertOutcome::Conflict => {
                let mut r = rejection(
                    &Topic::new(n.reading.device.clone(), Channel::Reading).to_string(),
                    Some(n.reading.device.as_str()),
                    &n.envelope,
                    "replayed_sequence",
                    format!(
                        "sequence {} of {} is already stored with different content",
                        n.reading.seq, n.reading.device
                    ),
                    n.received_at,
                );
                r.seq = Some(n.reading.seq);
                out.rejected.push(r);
            }
        }
    }
    if !out.rejected.is_empty() {
        let audits: Vec<NewAudit> = out.rejected.iter().map(rejection_audit).collect();
        state
            .store
            .record_rejections(&out.rejected, &audits)
            .await?;
    }
    for (k, topic, bytes, at) in rotations {
        rotate(state, &k, &topic, &bytes, at, &mut out).await?;
    }
    Ok(out)
}

/// Registers a verified key rotation and re-checks the device's quarantined entries.
fn rotate<'a>(
    state: &'a AppState,
    k: &'a KeyRotation,
    topic: &'a str,
    bytes: &'a [u8],
    at: OffsetDateTime,
    out: &'a mut Outcome,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>> {
    Box::pin(async move {
        let record = DeviceKeyRecord {
            device_id: k.device.to_string(),
            public_key: k.new_key,
            from_seq: k.seq + 1,
            registered_at: at,
        };
        let audit = NewAudit {
            at,
            actor: format!("device:{}", k.device),
            action: "device_key_rotated".into(),
            target: format!("device:{}", k.device),
            details: json!({ "from_seq": k.seq + 1, "public_key": k.new_key.to_string() }),
            ip: None,
        };
        match state.store.add_device_key(&record, &[audit]).await {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                let keys = state.store.device_keys(k.device.as_str()).await?;
                if keys
                    .iter()
                    .any(|x| x.from_seq == record.from_seq && x.public_key == record.public_key)
                {
                    out.duplicates += 1;
                    return Ok(());
                }
                let mut r = rejection(
                    topic,
                    Some(k.device.as_str()),
                    bytes,
                    "conflicting_rotation",
                    format!(
                        "a different key is already registered from sequence {}",
                        record.from_seq
                    ),
                    at,
                );
                r.seq = Some(k.seq);
                state
                    .store
                    .record_rejections(std::slice::from_ref(&r), &[rejection_audit(&r)])
                    .await?;
                out.rejected.push(r);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        tracing::info!(device = %k.device, from_seq = k.seq + 1, "device key rotated");
        state.directory.invalidate(k.device.as_str());
        state.hub.device_changed(k.device.as_str());
        let quarantined = state
            .store
            .take_quarantined(k.device.as_str(), k.seq + 1)
            .await?;
        if !quarantined.is_empty() {
            let messages: Vec<(String, Vec<u8>, OffsetDateTime)> = quarantined
                .into_iter()
                .map(|b| (topic.to_string(), b, at))
                .collect();
            let again = process(state, &messages).await?;
            out.stored.extend(again.stored);
            out.duplicates += again.duplicates;
            out.rejected.extend(again.rejected);
        }
        Ok(())
    })
}

/// Runs the pipeline over messages from the broker until the channel closes. Two stages:
/// this task gathers a group and checks it ([`check`]: CPU) while the storer commits the
/// group before ([`commit`]: mostly the disk's flush), so both cores are busy; groups are
/// stored and acknowledged in the order they arrived.
pub async fn run(
    state: AppState,
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<Item>,
    binder: mpsc::Sender<Reading>,
) {
    let max_batch = state.config.ingest.max_batch;
    let max_wait = Duration::from_millis(state.config.ingest.max_wait_ms);
    // One group checked ahead of the one being stored, no more: acknowledgements (and so
    // the devices' next messages) wait for the commit anyway.
    let (checked_tx, mut checked_rx) = mpsc::channel::<(Vec<Item>, Vec<Message>, Checked)>(1);
    let storer = {
        let state = state.clone();
        let acker = match state.broker.as_ref().and_then(|b| b.receipts.clone()) {
            Some(receipts) => Acker::Device(receipts),
            None => Acker::Broker(client.clone()),
        };
        tokio::spawn(async move {
            while let Some((group, messages, checked)) = checked_rx.recv().await {
                store_group(&state, &acker, group, &messages, checked, &binder).await;
            }
        })
    };
    let early_acks = state.broker.as_ref().is_some_and(|b| b.receipts.is_some());
    while let Some(first) = rx.recv().await {
        let group = gather(first, &mut rx, max_batch, max_wait).await;
        if early_acks {
            // The devices hold these until the commit (their PUBACKs wait in the gate), so
            // rumqttd may send the next ones now instead of waiting for this commit.
            for item in &group {
                if let Err(e) = client.ack(&item.publish).await {
                    tracing::warn!(error = %e, "cannot acknowledge a message");
                }
            }
        }
        let messages: Vec<Message> = group
            .iter()
            .filter(|i| {
                !matches!(
                    Topic::parse(&i.publish.topic).map(|t| t.channel),
                    Ok(Channel::Photo)
                )
            })
            .map(|i| {
                (
                    i.publish.topic.clone(),
                    i.publish.payload.to_vec(),
                    i.received_at,
                )
            })
            .collect();
        let checked = retrying(|| check(&state, &messages)).await;
        if checked_tx.send((group, messages, checked)).await.is_err() {
            tracing::error!("the ingest storer stopped");
            break;
        }
    }
    drop(checked_tx);
    if storer.await.is_err() {
        tracing::error!("the ingest storer panicked");
    }
}

/// A group: `first` and what follows it. A burst (the broker sends its in-flight window at
/// once) is taken whole without waiting; a message that trickles in alone waits up to
/// `max_wait` for company, so a slow stream still commits in groups. Waiting after a burst
/// would only delay it: the broker sends no more than its in-flight window (100 for rumqttd)
/// until this group is acknowledged, which for rumqttd happens right after gathering.
async fn gather(
    first: Item,
    rx: &mut mpsc::UnboundedReceiver<Item>,
    max_batch: usize,
    max_wait: Duration,
) -> Vec<Item> {
    let mut group = vec![first];
    let deadline = tokio::time::Instant::now() + max_wait;
    while group.len() < max_batch {
        match rx.try_recv() {
            Ok(i) => group.push(i),
            Err(_) => {
                // Let the MQTT loop hand over what it has already read.
                tokio::task::yield_now().await;
                if let Ok(i) = rx.try_recv() {
                    group.push(i);
                    continue;
                }
                if group.len() > 1 {
                    break;
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(i)) => group.push(i),
                    _ => break,
                }
            }
        }
    }
    group
}

/// Runs `f` until it succeeds: the store is down, so the messages stay unacknowledged (the
/// broker holds the rest) and are tried again.
async fn retrying<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::error!(error = %e, "cannot store readings; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Who is told that a group is committed.
enum Acker {
    /// The external broker, which persists messages until acknowledged.
    Broker(AsyncClient),
    /// The devices, through the gate (embedded broker; rumqttd was acknowledged already).
    Device(std::sync::Arc<crate::broker::receipts::Receipts>),
}

async fn store_group(
    state: &AppState,
    acker: &Acker,
    group: Vec<Item>,
    messages: &[Message],
    checked: Checked,
    binder: &mpsc::Sender<Reading>,
) {
    // Photos first: a reading's frame is then on disk before the reading is.
    for p in group.iter().filter(|i| {
        matches!(
            Topic::parse(&i.publish.topic).map(|t| t.channel),
            Ok(Channel::Photo)
        )
    }) {
        // Tried until it is stored, as readings are: the group behind it waits, and the
        // broker and the devices hold the rest.
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = store_photo(state, p).await {
            tracing::error!(error = %format!("{e:#}"), topic = %p.publish.topic, "photo not stored; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
    let outcome = match commit(state, checked).await {
        Ok(o) => o,
        // Checked again from the start once the store is back.
        Err(e) => {
            tracing::error!(error = %e, "cannot store readings; retrying");
            retrying(|| process(state, messages)).await
        }
    };
    let n = outcome.stored.len() as u64;
    metrics::counter!("metcon_ingest_readings_total", "outcome" => "stored").increment(n);
    metrics::counter!("metcon_ingest_readings_total", "outcome" => "duplicate")
        .increment(outcome.duplicates as u64);
    for r in &outcome.rejected {
        metrics::counter!("metcon_ingest_rejected_total", "reason" => r.reason.clone())
            .increment(1);
        tracing::warn!(device = ?r.device_id, reason = %r.reason, detail = %r.detail, "reading rejected");
    }
    for item in &group {
        metrics::histogram!("metcon_ingest_store_seconds")
            .record(item.received.elapsed().as_secs_f64());
        match acker {
            Acker::Broker(client) => {
                if let Err(e) = client.ack(&item.publish).await {
                    tracing::warn!(error = %e, "cannot acknowledge a message");
                }
            }
            Acker::Device(receipts) => {
                receipts.done(receipts.key(&item.publish.topic, &item.publish.payload));
            }
        }
    }
    if let Some(backlog) = state.broker.as_ref().and_then(|b| b.backlog.as_ref()) {
        let units = group
            .iter()
            .filter_map(|i| Topic::parse(&i.publish.topic).ok())
            .map(|t| crate::broker::backlog::weight(t.channel))
            .sum();
        backlog.stored(units);
    }
    for r in outcome.stored {
        let station = match state
            .directory
            .get(state.store.as_ref(), r.device.as_str())
            .await
        {
            Ok(Some(a)) => a.station_id.clone(),
            _ => continue,
        };
        let (net, unit, stable) = match &r.measurement {
            Measurement::Weight {
                net, unit, stable, ..
            } => (Some(*net), Some(*unit), *stable),
            _ => (None, None, false),
        };
        state.hub.publish(LiveEvent::Reading {
            station_id: station,
            device_id: r.device.to_string(),
            seq: r.seq,
            net,
            unit,
            stable,
        });
        if stable && state.hub.is_armed(r.device.as_str()) && binder.send(r).await.is_err() {
            tracing::error!("the binder stopped");
        }
    }
}

async fn store_photo(state: &AppState, item: &Item) -> anyhow::Result<()> {
    let bytes = &item.publish.payload;
    let sha = sha256_hex(bytes);
    let device = Topic::parse(&item.publish.topic)
        .map(|t| t.device.to_string())
        .ok();
    let known = match &device {
        Some(d) => matches!(
            state.directory.get(state.store.as_ref(), d).await?,
            Some(a) if a.state == DeviceState::Active
        ),
        None => false,
    };
    if !known || bytes.len() > state.config.broker.max_photo_bytes {
        let r = rejection(
            &item.publish.topic,
            device.as_deref(),
            bytes,
            if known { "oversized" } else { "unknown_device" },
            "photo refused".into(),
            item.received_at,
        );
        state
            .store
            .record_rejections(std::slice::from_ref(&r), &[rejection_audit(&r)])
            .await?;
        return Ok(());
    }
    state.blobs.put(&sha, bytes, "image/jpeg").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use metcon_shared::mass::MassUnit;
    use metcon_shared::reading::{sign, FORMAT_VERSION};
    use metcon_shared::topic::DeviceId;

    fn pending(seed: u8, seq: u64, tamper: bool) -> Pending {
        let k = SigningKey::from_bytes(&[seed; 32]);
        let r = Reading {
            v: FORMAT_VERSION,
            device: DeviceId::parse("scale-01").expect("id"),
            seq,
            measurement: Measurement::Weight {
                net: rust_decimal::Decimal::new(14830, 2),
                gross: None,
                tare: None,
                unit: MassUnit::G,
                stable: true,
            },
            scale_serial: None,
            raw_line: "S S 148.30 g".into(),
            device_time: OffsetDateTime::UNIX_EPOCH,
            frame_sha256: None,
            capture_request: None,
        };
        let bytes = sign(&r, &k).expect("sign").into_bytes();
        let envelope = Envelope::parse(&bytes).expect("parse");
        let key = if tamper {
            SigningKey::from_bytes(&[seed.wrapping_add(1); 32]).verifying_key()
        } else {
            k.verifying_key()
        };
        Pending {
            topic: "metcon/v1/dev/scale-01/reading".into(),
            device: "scale-01".into(),
            signed: envelope.open().expect("open"),
            envelope,
            bytes,
            key,
            received_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn batch_verification_finds_the_bad_signature() {
        let good: Vec<Pending> = (1..=20).map(|i| pending(1, i, false)).collect();
        assert!(verify_all(&good).iter().all(|ok| *ok));
        let mut mixed: Vec<Pending> = (1..=20).map(|i| pending(1, i, false)).collect();
        mixed[7] = pending(1, 8, true);
        let v = verify_all(&mixed);
        assert_eq!(v.iter().filter(|ok| !**ok).count(), 1);
        assert!(!v[7]);
    }
}
