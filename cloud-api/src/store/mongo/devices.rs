//! The device fleet on MongoDB ([`DeviceStore`]): `devices`, `device_keys`,
//! `enrollment_codes`, `readings` (unique `(device_id, sequence)`, append-only by code: never
//! updated but for the one-time binding), `reading_stats`, `ingest_rejections`, `arms`,
//! `calibrations`, `device_presence` and `presence_changes`.
//!
//! Readings of a group commit go in with one unordered `insert_many`; the duplicates it
//! reports are then told apart (same envelope: a re-delivery; different: a conflict).
//! Binding a reading runs in a transaction with the batch append, so the mass check, the
//! binding and the removal of the arm happen together or not at all.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use metcon_shared::batch::RecordedEvent;
use metcon_shared::calibration::CalibrationRecord;
use metcon_shared::reading::{Measurement, PublicKeyHex};
use metcon_shared::topic::Presence as Online;
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use mongodb::options::InsertManyOptions;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::*;
use super::txn::{conflict_or_missing, dup, transaction, Abort};
use super::MongoStore;
use crate::store::devices::*;
use crate::store::{BatchRecord, NewAudit, StoreError, StoreResult};

fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn get_bin(d: &Document, key: &str) -> StoreResult<Vec<u8>> {
    match d.get(key) {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        _ => Err(corrupt(format!("field {key} is not binary"))),
    }
}

fn device_doc(d: &Device) -> StoreResult<Document> {
    Ok(doc! {
        "_id": d.id.as_str(),
        "station_id": &d.station_id,
        "state": d.state.as_str(),
        "doc": to_bson(d)?,
        "created_at": ts(d.created_at),
        "updated_at": ts(d.updated_at),
    })
}

fn device_from(d: &Document) -> StoreResult<Device> {
    from_doc(get_doc(d, "doc")?)
}

fn key_doc(k: &DeviceKeyRecord) -> Document {
    doc! {
        "_id": format!("{}:{:020}", k.device_id, k.from_seq),
        "device_id": &k.device_id,
        "from_seq": k.from_seq as i64,
        "public_key": k.public_key.to_string(),
        "registered_at": ts(k.registered_at),
    }
}

/// A reading as stored: by ingest (unbound) and by an import (with its binding).
fn reading_doc(
    r: &metcon_shared::reading::Reading,
    envelope: &[u8],
    received_at: OffsetDateTime,
    binding: Option<&ReadingBinding>,
) -> StoreResult<Document> {
    Ok(doc! {
        "device_id": r.device.as_str(),
        "sequence": r.seq as i64,
        "received_at": ts(received_at),
        "envelope_sha256": hex::encode(Sha256::digest(envelope)),
        "envelope": bin(envelope),
        "doc": to_bson(r)?,
        "stable": matches!(r.measurement, Measurement::Weight { stable: true, .. }),
        "bound_batch": binding.map(|b| Bson::String(b.batch_id.to_string())).unwrap_or(Bson::Null),
        "binding": binding.map(to_bson).transpose()?.unwrap_or(Bson::Null),
    })
}

/// Per device: (readings added, highest sequence, latest arrival).
type StatsDelta<'a> = BTreeMap<&'a str, (i64, u64, String)>;

fn add_to_stats<'a>(stats: &mut StatsDelta<'a>, device: &'a str, seq: u64, at: OffsetDateTime) {
    let e = stats.entry(device).or_insert((0, 0, String::new()));
    e.0 += 1;
    e.1 = e.1.max(seq);
    e.2 = e.2.clone().max(ts(at));
}

fn rejection_doc(r: &Rejection, quarantined: Option<&[u8]>) -> Document {
    doc! {
        "at": ts(r.at),
        "device_id": opt_str(r.device_id.as_deref()),
        "topic": &r.topic,
        "reason": &r.reason,
        "detail": &r.detail,
        "size": r.size as i64,
        "payload_sha256": &r.payload_sha256,
        "seq": r.seq.map(|s| Bson::Int64(s as i64)).unwrap_or(Bson::Null),
        "quarantined": quarantined.map(bin).unwrap_or(Bson::Null),
    }
}

fn reading_from(d: &Document) -> StoreResult<StoredReading> {
    Ok(StoredReading {
        reading: from_doc(get_doc(d, "doc")?)?,
        envelope_sha256: get_str(d, "envelope_sha256")?.to_string(),
        received_at: get_time(d, "received_at")?,
        binding: match d.get("binding") {
            None | Some(Bson::Null) => None,
            Some(b) => Some(from_bson(b)?),
        },
    })
}

fn window(field: &str, from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Document {
    let mut range = Document::new();
    if let Some(f) = from {
        range.insert("$gte", ts(f));
    }
    if let Some(t) = to {
        range.insert("$lt", ts(t));
    }
    if range.is_empty() {
        doc! {}
    } else {
        doc! { field: range }
    }
}

impl MongoStore {
    async fn all_docs(
        &self,
        c: &mongodb::Collection<Document>,
        filter: Document,
        sort: Document,
    ) -> StoreResult<Vec<Document>> {
        c.find(filter)
            .sort(sort)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }

    /// The first `limit` documents of `filter` in `sort` order.
    async fn first_docs(
        &self,
        c: &mongodb::Collection<Document>,
        filter: Document,
        sort: Document,
        limit: u32,
    ) -> StoreResult<Vec<Document>> {
        c.find(filter)
            .sort(sort)
            .limit(i64::from(limit))
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }

    async fn add_reading_stats(&self, stats: StatsDelta<'_>) -> StoreResult<()> {
        for (device, (n, last_seq, last_at)) in stats {
            self.c
                .reading_stats
                .update_one(
                    doc! { "_id": device },
                    doc! { "$inc": { "readings": n }, "$max": { "last_seq": last_seq as i64, "last_at": last_at } },
                )
                .upsert(true)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Inserts, or replaces the record last written at `expected` (else `Conflict`).
    async fn write_device(
        &self,
        d: &Device,
        expected: Option<OffsetDateTime>,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let doc = device_doc(d)?;
        let insert = expected.is_none();
        let filter = match expected {
            Some(at) => doc! { "_id": d.id.as_str(), "updated_at": ts(at) },
            None => doc! {},
        };
        transaction!(self, |s| {
            if insert {
                self.c
                    .devices
                    .insert_one(doc.clone())
                    .session(&mut s)
                    .await
                    .map_err(dup(|| format!("device {}", d.id)))?;
            } else {
                let r = self
                    .c
                    .devices
                    .replace_one(filter.clone(), doc.clone())
                    .session(&mut s)
                    .await?;
                if r.matched_count == 0 {
                    let id = d.id.as_str();
                    return Err(conflict_or_missing(&self.c.devices, &mut s, id, || {
                        format!("device {id}")
                    })
                    .await);
                }
            }
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }
}

#[async_trait]
impl DeviceStore for MongoStore {
    async fn create_device(&self, device: &Device, audit: &[NewAudit]) -> StoreResult<()> {
        self.write_device(device, None, audit).await
    }

    async fn update_device(
        &self,
        device: &Device,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        self.write_device(device, Some(expected), audit).await
    }

    async fn device(&self, id: &str) -> StoreResult<Option<Device>> {
        self.c
            .devices
            .find_one(doc! { "_id": id })
            .await
            .map_err(backend)?
            .as_ref()
            .map(device_from)
            .transpose()
    }

    async fn list_devices(&self) -> StoreResult<Vec<Device>> {
        self.all_docs(&self.c.devices, doc! {}, doc! { "_id": 1 })
            .await?
            .iter()
            .map(device_from)
            .collect()
    }

    async fn device_keys(&self, id: &str) -> StoreResult<Vec<DeviceKeyRecord>> {
        self.all_docs(
            &self.c.device_keys,
            doc! { "device_id": id },
            doc! { "from_seq": 1 },
        )
        .await?
        .iter()
        .map(|d| {
            Ok(DeviceKeyRecord {
                device_id: get_str(d, "device_id")?.to_string(),
                public_key: PublicKeyHex::parse(get_str(d, "public_key")?).map_err(corrupt)?,
                from_seq: get_int(d, "from_seq")? as u64,
                registered_at: get_time(d, "registered_at")?,
            })
        })
        .collect()
    }

    async fn add_device_key(&self, key: &DeviceKeyRecord, audit: &[NewAudit]) -> StoreResult<()> {
        let d = key_doc(key);
        transaction!(self, |s| {
            let later = self
                .c
                .device_keys
                .count_documents(doc! { "device_id": &key.device_id, "from_seq": { "$gte": key.from_seq as i64 } })
                .session(&mut s)
                .await?;
            if later > 0 {
                return Err(Abort::Store(StoreError::Duplicate(format!(
                    "a key of device {} from sequence {}",
                    key.device_id, key.from_seq
                ))));
            }
            self.c
                .device_keys
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("key of device {}", key.device_id)))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    async fn create_enrollment_code(
        &self,
        code: &EnrollmentCode,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let d = doc! {
            "_id": &code.code_hash,
            "device_id": &code.device_id,
            "created_by": &code.created_by,
            "created_at": ts(code.created_at),
            "expires_at": ts(code.expires_at),
            "used_at": Bson::Null,
        };
        transaction!(self, |s| {
            self.c
                .enrollment_codes
                .delete_many(doc! { "device_id": &code.device_id, "used_at": Bson::Null })
                .session(&mut s)
                .await?;
            self.c
                .enrollment_codes
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| "enrollment code".to_string()))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    async fn consume_enrollment_code(
        &self,
        code_hash: &str,
        e: &Enrollment,
        audit_ok: &[NewAudit],
    ) -> StoreResult<Result<Device, EnrollRefusal>> {
        transaction!(self, |s| {
            let Some(code) = self
                .c
                .enrollment_codes
                .find_one(doc! { "_id": code_hash })
                .session(&mut s)
                .await?
            else {
                return Ok(Err(EnrollRefusal::Unknown));
            };
            if !matches!(code.get("used_at"), None | Some(Bson::Null)) {
                return Ok(Err(EnrollRefusal::Used));
            }
            if get_time(&code, "expires_at")? <= e.at {
                return Ok(Err(EnrollRefusal::Expired));
            }
            let device_id = get_str(&code, "device_id")?.to_string();
            let Some(found) = self
                .c
                .devices
                .find_one(doc! { "_id": &device_id })
                .session(&mut s)
                .await?
            else {
                return Ok(Err(EnrollRefusal::Unknown));
            };
            let mut device = device_from(&found)?;
            if device.state != DeviceState::Pending {
                return Ok(Err(EnrollRefusal::DeviceNotPending));
            }
            // conditional on "unused", so two concurrent enrollments cannot both win
            let r = self
                .c
                .enrollment_codes
                .update_one(
                    doc! { "_id": code_hash, "used_at": Bson::Null },
                    doc! { "$set": { "used_at": ts(e.at) } },
                )
                .session(&mut s)
                .await?;
            if r.modified_count == 0 {
                return Ok(Err(EnrollRefusal::Used));
            }
            device.state = DeviceState::Active;
            device.broker_secret_hash = Some(e.broker_secret_hash.clone());
            device.agent_version = Some(e.agent_version.clone());
            device.hostname = e.hostname.clone();
            device.enrolled_at = Some(e.at);
            device.updated_at = e.at;
            self.c
                .devices
                .replace_one(doc! { "_id": &device_id }, device_doc(&device)?)
                .session(&mut s)
                .await?;
            self.c
                .device_keys
                .insert_one(key_doc(&DeviceKeyRecord {
                    device_id: device_id.clone(),
                    public_key: e.public_key,
                    from_seq: 0,
                    registered_at: e.at,
                }))
                .session(&mut s)
                .await
                .map_err(dup(|| format!("key of device {device_id}")))?;
            let audit: Vec<NewAudit> = audit_ok
                .iter()
                .cloned()
                .map(|mut a| {
                    a.target = format!("device:{device_id}");
                    a
                })
                .collect();
            self.append_audit_tx(&mut s, &audit).await?;
            Ok(Ok(device))
        })
    }

    async fn insert_readings(&self, readings: &[NewReading]) -> StoreResult<Vec<InsertOutcome>> {
        if readings.is_empty() {
            return Ok(Vec::new());
        }
        let mut docs = Vec::with_capacity(readings.len());
        let mut shas = Vec::with_capacity(readings.len());
        for n in readings {
            let d = reading_doc(&n.reading, &n.envelope, n.received_at, None)?;
            shas.push(get_str(&d, "envelope_sha256")?.to_string());
            docs.push(d);
        }
        let mut failed = std::collections::HashSet::new();
        let opts = InsertManyOptions::builder().ordered(false).build();
        if let Err(e) = self.c.readings.insert_many(docs).with_options(opts).await {
            use mongodb::error::ErrorKind;
            match e.kind.as_ref() {
                ErrorKind::InsertMany(m) => {
                    for w in m.write_errors.iter().flatten() {
                        if w.code != DUPLICATE_KEY {
                            return Err(backend(&w.message));
                        }
                        failed.insert(w.index);
                    }
                    if m.write_concern_error.is_some() {
                        return Err(backend(e));
                    }
                }
                _ => return Err(backend(e)),
            }
        }
        let mut out = Vec::with_capacity(readings.len());
        let mut stats = StatsDelta::new();
        for (i, n) in readings.iter().enumerate() {
            let r = &n.reading;
            if !failed.contains(&i) {
                add_to_stats(&mut stats, r.device.as_str(), r.seq, n.received_at);
                out.push(InsertOutcome::Inserted);
                continue;
            }
            let stored = self
                .c
                .readings
                .find_one(doc! { "device_id": r.device.as_str(), "sequence": r.seq as i64 })
                .projection(doc! { "envelope_sha256": 1 })
                .await
                .map_err(backend)?;
            let same = stored
                .as_ref()
                .and_then(|d| d.get_str("envelope_sha256").ok())
                .is_some_and(|s| s == shas[i]);
            out.push(if same {
                InsertOutcome::Duplicate
            } else {
                InsertOutcome::Conflict
            });
        }
        self.add_reading_stats(stats).await?;
        Ok(out)
    }

    async fn reading(&self, device_id: &str, seq: u64) -> StoreResult<Option<StoredReading>> {
        self.c
            .readings
            .find_one(doc! { "device_id": device_id, "sequence": seq as i64 })
            .await
            .map_err(backend)?
            .as_ref()
            .map(reading_from)
            .transpose()
    }

    async fn list_readings(
        &self,
        device_id: &str,
        unbound_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<StoredReading>> {
        let mut filter = doc! { "device_id": device_id };
        if unbound_only {
            filter.insert("bound_batch", Bson::Null);
        }
        let docs = self
            .first_docs(&self.c.readings, filter, doc! { "sequence": -1 }, limit)
            .await?;
        docs.iter().map(reading_from).collect()
    }

    async fn record_rejections(
        &self,
        rejections: &[Rejection],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let docs: Vec<Document> = rejections
            .iter()
            .map(|r| rejection_doc(r, r.quarantined.as_deref()))
            .collect();
        transaction!(self, |s| {
            if !docs.is_empty() {
                self.c
                    .ingest_rejections
                    .insert_many(docs.clone())
                    .session(&mut s)
                    .await?;
            }
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    async fn take_quarantined(&self, device_id: &str, from_seq: u64) -> StoreResult<Vec<Vec<u8>>> {
        let filter = doc! { "device_id": device_id, "seq": { "$gte": from_seq as i64 }, "quarantined": { "$ne": Bson::Null } };
        let docs = self
            .all_docs(&self.c.ingest_rejections, filter, doc! { "seq": 1 })
            .await?;
        let mut out = Vec::new();
        for d in &docs {
            out.push(get_bin(d, "quarantined")?);
            if let Some(id) = d.get("_id") {
                self.c
                    .ingest_rejections
                    .update_one(
                        doc! { "_id": id.clone() },
                        doc! { "$set": { "quarantined": Bson::Null } },
                    )
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(out)
    }

    async fn arm(&self, arm: &Arm, audit: &[NewAudit]) -> StoreResult<()> {
        let d = doc! { "_id": &arm.device_id, "batch_id": arm.batch_id.to_string(), "doc": to_bson(arm)? };
        transaction!(self, |s| {
            self.c
                .arms
                .replace_one(doc! { "_id": &arm.device_id }, d.clone())
                .upsert(true)
                .session(&mut s)
                .await?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    async fn disarm(&self, device_id: &str, batch_id: Uuid) -> StoreResult<()> {
        self.c
            .arms
            .delete_one(doc! { "_id": device_id, "batch_id": batch_id.to_string() })
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn arm_for_device(&self, device_id: &str) -> StoreResult<Option<Arm>> {
        self.c
            .arms
            .find_one(doc! { "_id": device_id })
            .await
            .map_err(backend)?
            .as_ref()
            .map(|d| from_doc(get_doc(d, "doc")?))
            .transpose()
    }

    async fn arms_for_batch(&self, batch_id: Uuid) -> StoreResult<Vec<Arm>> {
        self.all_docs(
            &self.c.arms,
            doc! { "batch_id": batch_id.to_string() },
            doc! { "_id": 1 },
        )
        .await?
        .iter()
        .map(|d| from_doc(get_doc(d, "doc")?))
        .collect()
    }

    async fn list_arms(&self) -> StoreResult<Vec<Arm>> {
        self.all_docs(&self.c.arms, doc! {}, doc! { "_id": 1 })
            .await?
            .iter()
            .map(|d| from_doc(get_doc(d, "doc")?))
            .collect()
    }

    async fn bind_reading(
        &self,
        device_id: &str,
        seq: u64,
        binding: &ReadingBinding,
        batch: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let b = to_bson(binding)?;
        transaction!(self, |s| {
            let r = self
                .c
                .readings
                .update_one(
                    doc! { "device_id": device_id, "sequence": seq as i64, "bound_batch": Bson::Null },
                    doc! { "$set": { "bound_batch": binding.batch_id.to_string(), "binding": b.clone() } },
                )
                .session(&mut s)
                .await?;
            if r.modified_count == 0 {
                return Err(Abort::Store(StoreError::Conflict));
            }
            self.append_once(Some(&mut s), batch, expected_version, events)
                .await?;
            self.c
                .arms
                .delete_one(doc! { "_id": device_id, "batch_id": binding.batch_id.to_string() })
                .session(&mut s)
                .await?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })?;
        self.bump_generation().await
    }

    async fn add_calibration(
        &self,
        record: &CalibrationRecord,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let d = doc! {
            "_id": &record.id,
            "device_id": &record.device_id,
            "performed_at": ts(record.performed_at),
            "doc": to_bson(record)?,
        };
        transaction!(self, |s| {
            self.c
                .calibrations
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("calibration {}", record.id)))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    async fn calibrations(&self, device_id: &str) -> StoreResult<Vec<CalibrationRecord>> {
        self.all_docs(
            &self.c.calibrations,
            doc! { "device_id": device_id },
            doc! { "performed_at": 1, "_id": 1 },
        )
        .await?
        .iter()
        .map(|d| from_doc(get_doc(d, "doc")?))
        .collect()
    }

    async fn record_presence(&self, p: &Presence) -> StoreResult<()> {
        let online = p.status.presence == Online::Online;
        let before = self
            .c
            .device_presence
            .find_one_and_replace(
                doc! { "_id": &p.device_id },
                doc! { "_id": &p.device_id, "online": online, "received_at": ts(p.received_at), "doc": to_bson(&p.status)? },
            )
            .upsert(true)
            .await
            .map_err(backend)?;
        let was = before.as_ref().and_then(|d| d.get_bool("online").ok());
        if was != Some(online) {
            self.c
                .presence_changes
                .insert_one(
                    doc! { "device_id": &p.device_id, "online": online, "at": ts(p.received_at) },
                )
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn presences(&self) -> StoreResult<Vec<Presence>> {
        self.all_docs(&self.c.device_presence, doc! {}, doc! { "_id": 1 })
            .await?
            .iter()
            .map(|d| {
                Ok(Presence {
                    device_id: get_str(d, "_id")?.to_string(),
                    status: from_doc(get_doc(d, "doc")?)?,
                    received_at: get_time(d, "received_at")?,
                })
            })
            .collect()
    }

    async fn device_counts(&self) -> StoreResult<Vec<DeviceCounts>> {
        let stats = self
            .all_docs(&self.c.reading_stats, doc! {}, doc! { "_id": 1 })
            .await?;
        let mut out = Vec::with_capacity(stats.len());
        for d in &stats {
            let id = get_str(d, "_id")?.to_string();
            let unbound = self
                .c
                .readings
                .count_documents(doc! { "device_id": &id, "bound_batch": Bson::Null })
                .await
                .map_err(backend)?;
            out.push(DeviceCounts {
                readings: get_int(d, "readings")? as u64,
                unbound,
                last_reading_at: Some(get_time(d, "last_at")?),
                last_seq: Some(get_int(d, "last_seq")? as u64),
                device_id: id,
            });
        }
        Ok(out)
    }

    async fn reading_counts(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<ReadingCount>> {
        let docs: Vec<Document> = self
            .c
            .readings
            .aggregate(vec![
                doc! { "$match": window("received_at", from, to) },
                doc! { "$group": {
                    "_id": "$device_id",
                    "n": { "$sum": 1 },
                    "unbound": { "$sum": { "$cond": [{ "$eq": ["$bound_batch", Bson::Null] }, 1, 0] } },
                } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter()
            .map(|d| {
                Ok(ReadingCount {
                    device_id: get_str(d, "_id")?.to_string(),
                    readings: get_int(d, "n")? as u64,
                    unbound: get_int(d, "unbound")? as u64,
                })
            })
            .collect()
    }

    async fn rejection_counts(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<RejectionCount>> {
        let pipeline = vec![
            doc! { "$match": window("at", from, to) },
            doc! { "$group": { "_id": { "device_id": "$device_id", "reason": "$reason" }, "count": { "$sum": 1 } } },
            doc! { "$sort": { "_id.device_id": 1, "_id.reason": 1 } },
        ];
        let docs: Vec<Document> = self
            .c
            .ingest_rejections
            .aggregate(pipeline)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter()
            .map(|d| {
                let id = get_doc(d, "_id")?;
                Ok(RejectionCount {
                    device_id: get_opt_str(id, "device_id")?,
                    reason: get_str(id, "reason")?.to_string(),
                    count: get_int(d, "count")? as u64,
                })
            })
            .collect()
    }

    async fn presence_changes(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<PresenceChange>> {
        self.all_docs(
            &self.c.presence_changes,
            window("at", from, to),
            doc! { "at": 1, "_id": 1 },
        )
        .await?
        .iter()
        .map(|d| {
            Ok(PresenceChange {
                device_id: get_str(d, "device_id")?.to_string(),
                online: get_bool(d, "online")?,
                at: get_time(d, "at")?,
            })
        })
        .collect()
    }
}

// --- whole-store dumps and loads (`SnapshotStore`, see `snapshot`) -------------------------

use crate::store::snapshot::{DeviceDump, EnrollmentCodeDump, ReadingDump, RejectionDump};
use mongodb::bson::oid::ObjectId;

impl MongoStore {
    pub(super) async fn dump_enrollment_codes_all(&self) -> StoreResult<Vec<EnrollmentCodeDump>> {
        self.all_docs(
            &self.c.enrollment_codes,
            doc! {},
            doc! { "device_id": 1, "_id": 1 },
        )
        .await?
        .iter()
        .map(|d| {
            Ok(EnrollmentCodeDump {
                code_hash: get_str(d, "_id")?.to_string(),
                device_id: get_str(d, "device_id")?.to_string(),
                created_by: get_str(d, "created_by")?.to_string(),
                created_at: get_time(d, "created_at")?,
                expires_at: get_time(d, "expires_at")?,
                used_at: get_opt_time(d, "used_at")?,
            })
        })
        .collect()
    }

    pub(super) async fn dump_readings_page(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<ReadingDump>> {
        let filter = match after {
            Some((device, seq)) => doc! { "$or": [
                { "device_id": { "$gt": device } },
                { "device_id": device, "sequence": { "$gt": seq as i64 } },
            ] },
            None => doc! {},
        };
        let docs = self
            .first_docs(
                &self.c.readings,
                filter,
                doc! { "device_id": 1, "sequence": 1 },
                limit,
            )
            .await?;
        docs.iter()
            .map(|d| {
                let stored = reading_from(d)?;
                Ok(ReadingDump {
                    reading: stored.reading,
                    envelope: get_bin(d, "envelope")?,
                    received_at: stored.received_at,
                    binding: stored.binding,
                })
            })
            .collect()
    }

    pub(super) async fn dump_rejections_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, RejectionDump)>> {
        let filter = match after {
            Some(a) => {
                let id = ObjectId::parse_str(a)
                    .map_err(|_| corrupt(format!("bad rejection cursor {a:?}")))?;
                doc! { "_id": { "$gt": id } }
            }
            None => doc! {},
        };
        let docs = self
            .first_docs(&self.c.ingest_rejections, filter, doc! { "_id": 1 }, limit)
            .await?;
        docs.iter()
            .map(|d| {
                let id = d
                    .get_object_id("_id")
                    .map_err(|_| corrupt("a rejection without an object id"))?;
                let seq = match d.get("seq") {
                    None | Some(Bson::Null) => None,
                    Some(_) => Some(get_int(d, "seq")? as u64),
                };
                let quarantined = match d.get("quarantined") {
                    None | Some(Bson::Null) => None,
                    Some(_) => Some(get_bin(d, "quarantined")?),
                };
                Ok((
                    id.to_hex(),
                    RejectionDump {
                        rejection: Rejection {
                            at: get_time(d, "at")?,
                            device_id: get_opt_str(d, "device_id")?,
                            topic: get_str(d, "topic")?.to_string(),
                            reason: get_str(d, "reason")?.to_string(),
                            detail: get_str(d, "detail")?.to_string(),
                            size: get_int(d, "size")? as u64,
                            payload_sha256: get_str(d, "payload_sha256")?.to_string(),
                            seq,
                            quarantined: None,
                        },
                        quarantined,
                    },
                ))
            })
            .collect()
    }

    pub(super) async fn load_device_dump(&self, d: &DeviceDump) -> StoreResult<()> {
        let device = device_doc(&d.device)?;
        let keys: Vec<Document> = d.keys.iter().map(key_doc).collect();
        let codes: Vec<Document> = d
            .enrollment_codes
            .iter()
            .map(|c| {
                doc! {
                    "_id": &c.code_hash,
                    "device_id": &c.device_id,
                    "created_by": &c.created_by,
                    "created_at": ts(c.created_at),
                    "expires_at": ts(c.expires_at),
                    "used_at": c.used_at.map(ts).map(Bson::String).unwrap_or(Bson::Null),
                }
            })
            .collect();
        let calibrations = d
            .calibrations
            .iter()
            .map(|r| {
                Ok(doc! {
                    "_id": &r.id,
                    "device_id": &r.device_id,
                    "performed_at": ts(r.performed_at),
                    "doc": to_bson(r)?,
                })
            })
            .collect::<StoreResult<Vec<Document>>>()?;
        let presence = d
            .presence
            .as_ref()
            .map(|p| {
                Ok::<_, StoreError>(doc! {
                    "_id": &p.device_id,
                    "online": p.status.presence == Online::Online,
                    "received_at": ts(p.received_at),
                    "doc": to_bson(&p.status)?,
                })
            })
            .transpose()?;
        let changes: Vec<Document> = d
            .presence_changes
            .iter()
            .map(|p| doc! { "device_id": &p.device_id, "online": p.online, "at": ts(p.at) })
            .collect();
        let arm = d
            .arm
            .as_ref()
            .map(|a| {
                Ok::<_, StoreError>(
                    doc! { "_id": &a.device_id, "batch_id": a.batch_id.to_string(), "doc": to_bson(a)? },
                )
            })
            .transpose()?;
        let id = d.device.id.to_string();
        transaction!(self, |s| {
            self.c
                .devices
                .insert_one(device.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("device {id}")))?;
            for (coll, docs) in [
                (&self.c.device_keys, &keys),
                (&self.c.enrollment_codes, &codes),
                (&self.c.calibrations, &calibrations),
                (&self.c.presence_changes, &changes),
            ] {
                if !docs.is_empty() {
                    coll.insert_many(docs.clone())
                        .session(&mut s)
                        .await
                        .map_err(dup(|| format!("a record of device {id}")))?;
                }
            }
            if let Some(p) = &presence {
                self.c
                    .device_presence
                    .insert_one(p.clone())
                    .session(&mut s)
                    .await?;
            }
            if let Some(a) = &arm {
                self.c.arms.insert_one(a.clone()).session(&mut s).await?;
            }
            Ok(())
        })
    }

    pub(super) async fn load_reading_dumps(&self, readings: &[ReadingDump]) -> StoreResult<()> {
        if readings.is_empty() {
            return Ok(());
        }
        let mut docs = Vec::with_capacity(readings.len());
        let mut stats = StatsDelta::new();
        for d in readings {
            let r = &d.reading;
            docs.push(reading_doc(
                r,
                &d.envelope,
                d.received_at,
                d.binding.as_ref(),
            )?);
            add_to_stats(&mut stats, r.device.as_str(), r.seq, d.received_at);
        }
        self.c
            .readings
            .insert_many(docs)
            .await
            .map_err(map_write(|| "reading".to_string()))?;
        self.add_reading_stats(stats).await
    }

    pub(super) async fn load_rejection_dumps(
        &self,
        rejections: &[RejectionDump],
    ) -> StoreResult<()> {
        if rejections.is_empty() {
            return Ok(());
        }
        // The driver gives each document a fresh object id in file order, which keeps the
        // source's dump order.
        let docs: Vec<Document> = rejections
            .iter()
            .map(|d| rejection_doc(&d.rejection, d.quarantined.as_deref()))
            .collect();
        self.c
            .ingest_rejections
            .insert_many(docs)
            .await
            .map_err(map_write(|| "rejection".to_string()))?;
        Ok(())
    }
}
