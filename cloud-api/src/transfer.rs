//! `metcon-cloud export` / `import`: every record of a store in one line-oriented file, to
//! move a plant between backends (SQLite → MongoDB when it outgrows one box) or to keep an
//! offline copy.
//!
//! Format (JSON Lines, UTF-8, one JSON object per line):
//! - line 1, the header: `{"format":"metcon-export","version":1,"counts":{…}}` with the
//!   number of records of each kind ([`SnapshotCounts`]);
//! - then one line per record, `{"kind":K,"data":{…}}`, in this order and each kind in a
//!   stable order: `user` (by username, password hashes included), `session` (by id, with its
//!   refresh token hashes), `flow` (every version, by flow id and version), `counter` (batch
//!   number sequences), `setup_token` (at most one), `batch` (by creation time and id: the
//!   state, position and whole event stream), `device` (by id, with its keys, enrollment
//!   code hashes, calibrations, last status, online/offline history and armed step),
//!   `reading` (by device and sequence, with the signed envelope bytes and the binding),
//!   `rejection` (in the order stored, with a quarantined envelope while kept), `photo`
//!   (photo evidence metadata by id; the photo files themselves stay in the blob store),
//!   `audit` (by sequence number, exactly as hashed), `audit_head`.
//!
//! Version 1 files (written before the device fleet existed) still import.
//!
//! The same data gives the same bytes whichever backend wrote it. Import refuses a store that
//! is not empty, loads everything as it was (batches through `import_batches`, which rebuilds
//! the read model), then checks the counts against the header and verifies the audit chain.
//! Export reads a live store page by page; stop writers first for a consistent copy (the
//! counts check tells if something changed meanwhile).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use indicatif::ProgressBar;
use metcon_shared::batch::BatchState;
use metcon_shared::flow::Flow;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audit;
use crate::store::snapshot::*;
use crate::store::{
    visit_station, AuditHead, AuditRecord, BatchRecord, ImportedBatch, Store, StoreError, User,
};

pub const FORMAT: &str = "metcon-export";
pub const VERSION: u32 = 2;
/// Versions [`import`] reads.
const READS: [u32; 2] = [1, 2];

/// Batches per page read or per `import_batches` call.
const BATCH_PAGE: u32 = 500;
/// Other records per load call.
const CHUNK: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {problem}")]
    Format { line: u64, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the target store is not empty ({0:?}); import only into an empty store")]
    NotEmpty(SnapshotCounts),
    #[error("the counts do not match: the file says {expected:?}, the store has {actual:?}")]
    CountMismatch {
        expected: SnapshotCounts,
        actual: SnapshotCounts,
    },
    #[error("the audit chain does not verify after import: {0}")]
    AuditBroken(String),
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub counts: SnapshotCounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHeadLine {
    pub seq: u64,
    pub hash: String,
}

/// Every other line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Line {
    User(User),
    Session(SessionDump),
    Flow(Flow),
    Counter(CounterDump),
    SetupToken(SetupTokenDump),
    Batch(BatchDump),
    Device(Box<DeviceDump>),
    Reading(Box<ReadingDump>),
    Rejection(RejectionDump),
    Photo(Box<crate::store::photos::PhotoRecord>),
    Audit(AuditRecord),
    AuditHead(AuditHeadLine),
}

fn total(c: &SnapshotCounts) -> u64 {
    c.users
        + c.sessions
        + c.flows
        + c.batch_counters
        + c.setup_tokens
        + c.batches
        + c.devices
        + c.readings
        + c.rejections
        + c.photos
        + c.audit_records
}

/// Every device with what hangs off it, ordered by id.
async fn device_dumps(store: &dyn Store) -> Result<Vec<DeviceDump>, TransferError> {
    use std::collections::BTreeMap;
    let mut codes: BTreeMap<String, Vec<EnrollmentCodeDump>> = BTreeMap::new();
    for c in store.dump_enrollment_codes().await? {
        codes.entry(c.device_id.clone()).or_default().push(c);
    }
    let mut presence: BTreeMap<String, _> = store
        .presences()
        .await?
        .into_iter()
        .map(|p| (p.device_id.clone(), p))
        .collect();
    let mut changes: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for c in store.presence_changes(None, None).await? {
        changes.entry(c.device_id.clone()).or_default().push(c);
    }
    let mut arms: BTreeMap<String, _> = store
        .list_arms()
        .await?
        .into_iter()
        .map(|a| (a.device_id.clone(), a))
        .collect();
    let mut devices = store.list_devices().await?;
    devices.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let mut out = Vec::with_capacity(devices.len());
    for device in devices {
        let id = device.id.to_string();
        out.push(DeviceDump {
            keys: store.device_keys(&id).await?,
            enrollment_codes: codes.remove(&id).unwrap_or_default(),
            calibrations: store.calibrations(&id).await?,
            presence: presence.remove(&id),
            presence_changes: changes.remove(&id).unwrap_or_default(),
            arm: arms.remove(&id),
            device,
        });
    }
    Ok(out)
}

/// Writes lines on a blocking thread so the async workers never wait on the disk.
struct Writer {
    tx: mpsc::Sender<Vec<u8>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Writer {
    fn create(path: &Path) -> std::io::Result<Writer> {
        let file = std::fs::File::create(path)?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let done = tokio::task::spawn_blocking(move || {
            let mut w = std::io::BufWriter::new(file);
            while let Some(line) = rx.blocking_recv() {
                w.write_all(&line)?;
            }
            w.flush()?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()
        });
        Ok(Writer { tx, done })
    }

    async fn line<T: Serialize>(&self, value: &T) -> Result<(), TransferError> {
        let mut bytes =
            serde_json::to_vec(value).map_err(|e| std::io::Error::other(e.to_string()))?;
        bytes.push(b'\n');
        self.tx
            .send(bytes)
            .await
            .map_err(|_| std::io::Error::other("the export writer stopped"))?;
        Ok(())
    }

    async fn finish(self) -> Result<(), TransferError> {
        drop(self.tx);
        self.done
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(())
    }
}

/// Writes every record of `store` to `path`; returns the counts written.
pub async fn export(
    store: &dyn Store,
    path: &Path,
    bar: &ProgressBar,
) -> Result<SnapshotCounts, TransferError> {
    let counts = store.snapshot_counts().await?;
    bar.set_length(total(&counts));
    let w = Writer::create(path)?;
    w.line(&Header {
        format: FORMAT.into(),
        version: VERSION,
        counts: counts.clone(),
    })
    .await?;
    let mut seen = SnapshotCounts::default();
    for u in store.list_users().await? {
        seen.users += 1;
        w.line(&Line::User(u)).await?;
        bar.inc(1);
    }
    for s in store.dump_sessions().await? {
        seen.sessions += 1;
        seen.refresh_tokens += s.refresh_tokens.len() as u64;
        w.line(&Line::Session(s)).await?;
        bar.inc(1);
    }
    let mut ids: Vec<String> = store
        .list_flows()
        .await?
        .into_iter()
        .map(|f| f.flow_id)
        .collect();
    ids.sort();
    for id in ids {
        for f in store.flow_versions(&id).await? {
            seen.flows += 1;
            w.line(&Line::Flow(f)).await?;
            bar.inc(1);
        }
    }
    for c in store.dump_counters().await? {
        seen.batch_counters += 1;
        w.line(&Line::Counter(c)).await?;
        bar.inc(1);
    }
    if let Some(t) = store.dump_setup_token().await? {
        seen.setup_tokens += 1;
        w.line(&Line::SetupToken(t)).await?;
        bar.inc(1);
    }
    let mut after: Option<BatchKey> = None;
    loop {
        let page = store.dump_batches(after.as_ref(), BATCH_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key());
        for b in page {
            seen.batches += 1;
            seen.events += b.events.len() as u64;
            w.line(&Line::Batch(b)).await?;
            bar.inc(1);
        }
    }
    for d in device_dumps(store).await? {
        seen.devices += 1;
        seen.device_keys += d.keys.len() as u64;
        seen.enrollment_codes += d.enrollment_codes.len() as u64;
        seen.calibrations += d.calibrations.len() as u64;
        seen.arms += u64::from(d.arm.is_some());
        seen.presences += u64::from(d.presence.is_some());
        seen.presence_changes += d.presence_changes.len() as u64;
        w.line(&Line::Device(Box::new(d))).await?;
        bar.inc(1);
    }
    let mut after: Option<(String, u64)> = None;
    loop {
        let page = store
            .dump_readings(after.as_ref().map(|(d, s)| (d.as_str(), *s)), CHUNK as u32)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.reading.device.to_string(), last.reading.seq));
        for r in page {
            seen.readings += 1;
            w.line(&Line::Reading(Box::new(r))).await?;
            bar.inc(1);
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = store
            .dump_rejections(after.as_deref(), CHUNK as u32)
            .await?;
        let Some((cursor, _)) = page.last() else {
            break;
        };
        after = Some(cursor.clone());
        for (_, r) in page {
            seen.rejections += 1;
            w.line(&Line::Rejection(r)).await?;
            bar.inc(1);
        }
    }
    let mut after = None;
    loop {
        let page = store.photos_after(after, CHUNK as u32).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for p in page {
            seen.photos += 1;
            w.line(&Line::Photo(Box::new(p))).await?;
            bar.inc(1);
        }
    }
    let mut after = 0;
    loop {
        let page = store.audit_records(after, CHUNK as u32).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            seen.audit_records += 1;
            w.line(&Line::Audit(r)).await?;
            bar.inc(1);
        }
    }
    if let Some(h) = store.audit_head().await? {
        w.line(&Line::AuditHead(AuditHeadLine {
            seq: h.seq,
            hash: h.hash,
        }))
        .await?;
    }
    w.finish().await?;
    if seen != counts {
        return Err(TransferError::CountMismatch {
            expected: counts,
            actual: seen,
        });
    }
    Ok(counts)
}

/// Station after each event, replayed against the pinned flow (what the read model needs).
fn stations_after(
    flow: &Flow,
    events: &[metcon_shared::batch::RecordedEvent],
) -> Result<Vec<Option<String>>, String> {
    let first = events.first().ok_or("a batch without events")?;
    let mut state = BatchState::from_created(first).map_err(|e| e.to_string())?;
    let mut out = vec![None];
    for rec in &events[1..] {
        state.apply(rec).map_err(|e| e.to_string())?;
        let station = flow
            .content
            .step_at(state.cursor)
            .map(|(s, _)| s.station_id.as_str());
        out.push(visit_station(state.status, station).map(str::to_string));
    }
    Ok(out)
}

/// Reads lines on a blocking thread; yields (line number, text).
fn read_lines(path: &Path) -> std::io::Result<mpsc::Receiver<std::io::Result<(u64, String)>>> {
    let file = std::fs::File::open(path)?;
    let (tx, rx) = mpsc::channel(256);
    tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::new(file);
        for (i, line) in reader.lines().enumerate() {
            let item = line.map(|l| (i as u64 + 1, l));
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    Ok(rx)
}

#[derive(Default)]
struct Pending {
    users: Vec<User>,
    sessions: Vec<SessionDump>,
    flows: Vec<Flow>,
    counters: Vec<CounterDump>,
    batches: Vec<ImportedBatch>,
    readings: Vec<ReadingDump>,
    rejections: Vec<RejectionDump>,
    photos: Vec<crate::store::photos::PhotoRecord>,
    audit: Vec<AuditRecord>,
}

impl Pending {
    async fn flush(&mut self, store: &dyn Store) -> Result<(), TransferError> {
        if !self.users.is_empty() {
            store.load_users(&std::mem::take(&mut self.users)).await?;
        }
        if !self.sessions.is_empty() {
            store
                .load_sessions(&std::mem::take(&mut self.sessions))
                .await?;
        }
        if !self.flows.is_empty() {
            store.load_flows(&std::mem::take(&mut self.flows)).await?;
        }
        if !self.counters.is_empty() {
            store
                .load_counters(&std::mem::take(&mut self.counters))
                .await?;
        }
        if !self.batches.is_empty() {
            store
                .import_batches(std::mem::take(&mut self.batches))
                .await?;
        }
        if !self.readings.is_empty() {
            store
                .load_readings(&std::mem::take(&mut self.readings))
                .await?;
        }
        if !self.rejections.is_empty() {
            store
                .load_rejections(&std::mem::take(&mut self.rejections))
                .await?;
        }
        for p in std::mem::take(&mut self.photos) {
            store.insert_photo(&p, &[]).await?;
        }
        if !self.audit.is_empty() {
            store.load_audit(&std::mem::take(&mut self.audit)).await?;
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.users.len() >= CHUNK
            || self.sessions.len() >= CHUNK
            || self.flows.len() >= CHUNK
            || self.counters.len() >= CHUNK
            || self.batches.len() >= BATCH_PAGE as usize
            || self.readings.len() >= CHUNK
            || self.rejections.len() >= CHUNK
            || self.photos.len() >= CHUNK
            || self.audit.len() >= CHUNK
    }
}

/// Loads an export into an empty store, then checks counts and the audit chain.
pub async fn import(
    store: &dyn Store,
    path: &Path,
    bar: &ProgressBar,
) -> Result<SnapshotCounts, TransferError> {
    let before = store.snapshot_counts().await?;
    if !before.is_empty() {
        return Err(TransferError::NotEmpty(before));
    }
    let mut lines = read_lines(path)?;
    let bad = |line: u64, problem: String| TransferError::Format { line, problem };
    let header: Header = match lines.recv().await {
        Some(item) => {
            let (n, text) = item?;
            serde_json::from_str(&text)
                .map_err(|e| bad(n, format!("not a METCON export header: {e}")))?
        }
        None => return Err(bad(1, "the file is empty".into())),
    };
    if header.format != FORMAT || !READS.contains(&header.version) {
        return Err(bad(
            1,
            format!(
                "format {} version {} is not {FORMAT} version {}",
                header.format,
                header.version,
                READS.map(|v| v.to_string()).join(" or ")
            ),
        ));
    }
    bar.set_length(total(&header.counts));
    let mut flows: HashMap<(String, u32), Flow> = HashMap::new();
    let mut pending = Pending::default();
    let mut head: Option<AuditHead> = None;
    while let Some(item) = lines.recv().await {
        let (n, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| bad(n, e.to_string()))?;
        match line {
            Line::User(u) => pending.users.push(u),
            Line::Session(s) => pending.sessions.push(s),
            Line::Flow(f) => {
                flows.insert((f.flow_id.clone(), f.version), f.clone());
                pending.flows.push(f);
            }
            Line::Counter(c) => pending.counters.push(c),
            Line::SetupToken(t) => {
                pending.flush(store).await?;
                store.load_setup_token(&t).await?;
            }
            Line::Batch(b) => {
                let key = (b.state.flow_id.clone(), b.state.flow_version);
                let flow = flows.get(&key).ok_or_else(|| {
                    bad(
                        n,
                        format!(
                            "batch {} pins flow {}@{}, which comes nowhere before it",
                            b.state.batch_number, key.0, key.1
                        ),
                    )
                })?;
                let stations = stations_after(flow, &b.events)
                    .map_err(|e| bad(n, format!("batch {}: {e}", b.state.batch_number)))?;
                pending.batches.push(ImportedBatch {
                    record: BatchRecord {
                        state: b.state,
                        current_station: b.current_station,
                        current_step: b.current_step,
                    },
                    events: b.events,
                    stations_after: stations,
                });
            }
            Line::Device(d) => {
                pending.flush(store).await?;
                store.load_device(&d).await?;
            }
            Line::Reading(r) => pending.readings.push(*r),
            Line::Rejection(r) => pending.rejections.push(r),
            Line::Photo(p) => pending.photos.push(*p),
            Line::Audit(r) => pending.audit.push(r),
            Line::AuditHead(h) => {
                head = Some(AuditHead {
                    seq: h.seq,
                    hash: h.hash,
                })
            }
        }
        bar.inc(1);
        // Kinds come in order (users before sessions before …): flushing whenever a buffer
        // fills, and at the end, keeps every reference pointing at something loaded.
        if pending.full() {
            pending.flush(store).await?;
        }
    }
    pending.flush(store).await?;
    if let Some(h) = &head {
        store.load_audit_head(h).await?;
    }
    let after = store.snapshot_counts().await?;
    if after != header.counts {
        return Err(TransferError::CountMismatch {
            expected: header.counts,
            actual: after,
        });
    }
    let report = audit::verify(store).await?;
    if !report.ok {
        let problems: Vec<String> = report
            .breaks
            .iter()
            .map(|b| format!("record {}: {}", b.seq, b.problem))
            .collect();
        return Err(TransferError::AuditBroken(problems.join("; ")));
    }
    Ok(after)
}
