//! Batches on MongoDB: one document per batch (the seed's model) holding the position the
//! WIP board indexes (`status`, `current_station`, …), the aggregate `state`, the embedded
//! append-only `events` and `flags`, and the batch's read model (see `projection`).
//!
//! An append is one conditional update: `update_one({_id, version: expected}, {$push:
//! {events}, $set: {state, position, read model, version}})`. `matched_count == 0` means a
//! concurrent append won: `Conflict`, nothing written. With audit records the same update
//! runs in a transaction with the audit chain. Batch numbers come from `batch_counters`
//! (`$inc`, never reused); `n`, a store-wide insertion counter, gives report rows a stable
//! tie-break like SQLite's row ids.

use futures_util::TryStreamExt;
use metcon_shared::batch::{BatchState, RecordedEvent};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::ClientSession;

use super::codec::*;
use super::projection::ReadModel;
use super::txn::{transaction, Abort, TxResult};
use super::MongoStore;
use crate::store::sqlite_readmodel::visit_station;
use crate::store::*;

/// Documents per `insert_many` when importing.
const IMPORT_CHUNK: usize = 200;

fn priority_name(s: &BatchState) -> StoreResult<String> {
    Ok(serde_json::to_value(s.priority)
        .map_err(backend)?
        .as_str()
        .unwrap_or("normal")
        .to_string())
}

/// The state without its flags (those live beside it, as the seed's `flags` array).
fn state_parts(s: &BatchState) -> StoreResult<(Document, Bson)> {
    let mut d = to_doc(s)?;
    let flags = d.remove("flags").unwrap_or(Bson::Array(Vec::new()));
    Ok((d, flags))
}

fn read_model_fields(rm: &ReadModel) -> StoreResult<Document> {
    to_doc(rm)
}

pub(super) fn batch_doc(
    b: &BatchRecord,
    events: &[RecordedEvent],
    rm: &ReadModel,
    n: i64,
) -> StoreResult<Document> {
    let s = &b.state;
    let priority = priority_name(s)?;
    let (state, flags) = state_parts(s)?;
    let mut d = doc! {
        "_id": s.batch_id.to_string(),
        "n": n,
        "batch_number": &s.batch_number,
        "pipeline": &s.pipeline,
        "flow_id": &s.flow_id,
        "flow_version": s.flow_version as i64,
        "status": s.status.as_str(),
        "priority_rank": if priority == "high" { 0_i32 } else { 1_i32 },
        "priority": priority,
        "current_station": opt_str(b.current_station.as_deref()),
        "current_step": opt_str(b.current_step.as_deref()),
        "created_at": ts(s.created_at),
        "updated_at": ts(s.updated_at),
        "version": s.version as i64,
        "state": state,
        "flags": flags,
        "events": events.iter().map(to_bson).collect::<StoreResult<Vec<_>>>()?,
    };
    d.extend(read_model_fields(rm)?);
    Ok(d)
}

pub(super) fn record_from(d: &Document) -> StoreResult<BatchRecord> {
    let mut state = get_doc(d, "state")?.clone();
    state.insert(
        "flags",
        d.get("flags").cloned().unwrap_or(Bson::Array(Vec::new())),
    );
    Ok(BatchRecord {
        state: from_doc(&state)?,
        current_station: get_opt_str(d, "current_station")?,
        current_step: get_opt_str(d, "current_step")?,
    })
}

pub(super) fn events_from(d: &Document) -> StoreResult<Vec<RecordedEvent>> {
    match d.get("events") {
        Some(Bson::Array(a)) => a.iter().map(from_bson).collect(),
        None => Ok(Vec::new()),
        Some(other) => Err(corrupt(format!("batch events are not an array: {other}"))),
    }
}

fn read_model_from(d: &Document) -> StoreResult<ReadModel> {
    let part = doc! {
        "mass_checks": d.get("mass_checks").cloned().unwrap_or(Bson::Array(Vec::new())),
        "exceptions": d.get("exceptions").cloned().unwrap_or(Bson::Array(Vec::new())),
        "visits": d.get("visits").cloned().unwrap_or(Bson::Array(Vec::new())),
    };
    from_doc(&part)
}

/// Fields that are not needed to rebuild a `BatchRecord`.
fn record_projection() -> Document {
    doc! { "state": 1, "flags": 1, "current_station": 1, "current_step": 1 }
}

impl MongoStore {
    /// `$inc` on a counter document created on first use; returns the value after.
    ///
    /// Two first uses racing may both try to insert the document: real MongoDB retries such
    /// an upsert itself, a stand-in may answer with a duplicate key error or with no document
    /// at all. Either way the document exists now, so the increment is simply run again.
    async fn increment(
        &self,
        coll: &mongodb::Collection<Document>,
        id: &str,
        field: &str,
        by: i64,
        on_insert: Document,
    ) -> StoreResult<i64> {
        let mut update = doc! { "$inc": { field: by } };
        if !on_insert.is_empty() {
            update.insert("$setOnInsert", on_insert);
        }
        for _ in 0..5 {
            match coll
                .find_one_and_update(doc! { "_id": id }, update.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await
            {
                Ok(Some(d)) => return get_int(&d, field),
                Ok(None) => {}
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Err(backend(format!("counter {id} could not be incremented")))
    }

    pub(super) async fn next_number(&self, pipeline: &str, year: i32) -> StoreResult<u32> {
        let last = self
            .increment(
                &self.c.batch_counters,
                &format!("{pipeline}:{year}"),
                "last",
                1,
                doc! { "pipeline": pipeline, "year": year },
            )
            .await?;
        u32::try_from(last).map_err(corrupt)
    }

    /// Reserves `count` consecutive row numbers; returns the first.
    async fn reserve_rows(&self, count: usize) -> StoreResult<i64> {
        let last = self
            .increment(
                &self.c.counters,
                "batch_rows",
                "n",
                count as i64,
                Document::new(),
            )
            .await?;
        Ok(last - count as i64 + 1)
    }

    pub(super) async fn insert_new_batch(
        &self,
        b: &BatchRecord,
        created: &RecordedEvent,
    ) -> StoreResult<()> {
        let mut rm = ReadModel::default();
        rm.project(
            std::slice::from_ref(created),
            visit_station(b.state.status, b.current_station.as_deref()),
        )?;
        let n = self.reserve_rows(1).await?;
        let d = batch_doc(b, std::slice::from_ref(created), &rm, n)?;
        self.c
            .batches
            .insert_one(d)
            .await
            .map_err(map_write(|| format!("batch {}", b.state.batch_number)))?;
        self.bump_generation().await
    }

    /// One attempt at an append, inside a transaction when `s` is given.
    pub(super) async fn append_once(
        &self,
        mut s: Option<&mut ClientSession>,
        b: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
    ) -> TxResult<()> {
        let st = &b.state;
        let id = st.batch_id.to_string();
        let find = self
            .c
            .batches
            .find_one(doc! { "_id": &id })
            .projection(doc! { "version": 1, "mass_checks": 1, "exceptions": 1, "visits": 1 });
        let current = match s.as_deref_mut() {
            Some(s) => find.session(s).await?,
            None => find.await?,
        };
        let Some(current) = current else {
            return Err(Abort::Store(StoreError::Conflict));
        };
        if get_int(&current, "version")? != expected_version as i64 {
            return Err(Abort::Store(StoreError::Conflict));
        }
        let mut rm = read_model_from(&current)?;
        rm.project(
            events,
            visit_station(st.status, b.current_station.as_deref()),
        )?;
        let (state, flags) = state_parts(st)?;
        let mut set = doc! {
            "status": st.status.as_str(),
            "current_station": opt_str(b.current_station.as_deref()),
            "current_step": opt_str(b.current_step.as_deref()),
            "updated_at": ts(st.updated_at),
            "version": st.version as i64,
            "state": state,
            "flags": flags,
        };
        set.extend(read_model_fields(&rm)?);
        let update = doc! {
            "$push": { "events": { "$each": events.iter().map(to_bson).collect::<StoreResult<Vec<_>>>()? } },
            "$set": set,
        };
        let filter = doc! { "_id": &id, "version": expected_version as i64 };
        let q = self.c.batches.update_one(filter, update);
        let r = match s {
            Some(s) => q.session(s).await,
            None => q.await,
        };
        match r {
            Ok(r) if r.matched_count == 0 => Err(Abort::Store(StoreError::Conflict)),
            Ok(_) => Ok(()),
            // An event id already stored: the same command applied twice.
            Err(e) if is_duplicate(&e) => Err(Abort::Store(StoreError::Conflict)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn append(
        &self,
        b: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        if audit.is_empty() {
            match self.append_once(None, b, expected_version, events).await {
                Ok(()) => {}
                Err(Abort::Store(e)) => return Err(e),
                Err(Abort::Mongo(e)) => return Err(backend(e)),
                Err(Abort::Retry) => return Err(StoreError::Conflict),
            }
        } else {
            transaction!(self, |s| {
                self.append_once(Some(&mut s), b, expected_version, events)
                    .await?;
                self.append_audit_tx(&mut s, audit).await?;
                Ok(())
            })?;
        }
        self.bump_generation().await
    }

    pub(super) async fn import(&self, batches: Vec<ImportedBatch>) -> StoreResult<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let first = self.reserve_rows(batches.len()).await?;
        let mut numbers: std::collections::BTreeMap<(String, i32), u32> = Default::default();
        for chunk in batches.chunks(IMPORT_CHUNK).enumerate() {
            let (c, chunk) = chunk;
            let mut docs = Vec::with_capacity(chunk.len());
            for (i, ib) in chunk.iter().enumerate() {
                if ib.stations_after.len() != ib.events.len() {
                    return Err(backend("import: one station-after per event is needed"));
                }
                let mut rm = ReadModel::default();
                for (e, station) in ib.events.iter().zip(&ib.stations_after) {
                    rm.project(std::slice::from_ref(e), station.as_deref())?;
                }
                let n = first + (c * IMPORT_CHUNK + i) as i64;
                docs.push(batch_doc(&ib.record, &ib.events, &rm, n)?);
                let s = &ib.record.state;
                if let Ok(num) = metcon_shared::batch_number::BatchNumber::parse(&s.batch_number) {
                    let e = numbers.entry((s.pipeline.clone(), num.year)).or_default();
                    *e = (*e).max(num.seq);
                }
            }
            self.c
                .batches
                .insert_many(docs)
                .await
                .map_err(map_write(|| "batch (import)".into()))?;
        }
        // Keep the number sequences ahead of imported numbers.
        for ((pipeline, year), seq) in numbers {
            self.c
                .batch_counters
                .update_one(
                    doc! { "_id": format!("{pipeline}:{year}") },
                    doc! { "$max": { "last": seq as i64 }, "$setOnInsert": { "pipeline": &pipeline, "year": year } },
                )
                .upsert(true)
                .await
                .map_err(backend)?;
        }
        self.bump_generation().await
    }

    pub(super) async fn find_batch(&self, id: uuid::Uuid) -> StoreResult<Option<BatchRecord>> {
        self.c
            .batches
            .find_one(doc! { "_id": id.to_string() })
            .projection(record_projection())
            .await
            .map_err(backend)?
            .as_ref()
            .map(record_from)
            .transpose()
    }

    pub(super) async fn events_of(&self, id: uuid::Uuid) -> StoreResult<Vec<RecordedEvent>> {
        let d = self
            .c
            .batches
            .find_one(doc! { "_id": id.to_string() })
            .projection(doc! { "events": 1 })
            .await
            .map_err(backend)?;
        match d {
            Some(d) => events_from(&d),
            None => Ok(Vec::new()),
        }
    }

    pub(super) async fn batch_page(&self, f: &BatchFilter) -> StoreResult<Page<BatchRecord>> {
        let mut and: Vec<Document> = Vec::new();
        if let Some(s) = f.status {
            and.push(doc! { "status": s.as_str() });
        }
        if let Some(s) = &f.station {
            and.push(doc! { "current_station": s });
        }
        if let Some(p) = &f.pipeline {
            and.push(doc! { "pipeline": p });
        }
        if let Some(fl) = &f.flow_id {
            and.push(doc! { "flow_id": fl });
        }
        if let Some(stations) = &f.stations_in {
            and.push(doc! { "current_station": { "$in": stations } });
        }
        let filter = if and.is_empty() {
            doc! {}
        } else {
            doc! { "$and": and }
        };
        let total = self
            .c
            .batches
            .count_documents(filter.clone())
            .await
            .map_err(backend)?;
        let page = f.page.max(1);
        let docs: Vec<Document> = self
            .c
            .batches
            .find(filter)
            .sort(doc! { "priority_rank": 1, "created_at": -1, "n": -1 })
            .skip((page as u64 - 1) * PAGE_SIZE as u64)
            .limit(PAGE_SIZE as i64)
            .projection(record_projection())
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        Ok(Page {
            items: docs.iter().map(record_from).collect::<StoreResult<_>>()?,
            page,
            per_page: PAGE_SIZE,
            total,
        })
    }

    pub(super) async fn wip_cells(&self) -> StoreResult<Vec<WipCell>> {
        let pipeline = vec![
            doc! { "$match": { "status": { "$ne": "completed" } } },
            doc! { "$group": {
                "_id": { "station": "$current_station", "status": "$status" },
                "count": { "$sum": 1 },
                "oldest": { "$min": "$updated_at" },
            } },
            doc! { "$sort": { "_id.station": 1, "_id.status": 1 } },
        ];
        let docs: Vec<Document> = self
            .c
            .batches
            .aggregate(pipeline)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter()
            .map(|d| {
                let key = get_doc(d, "_id")?;
                Ok(WipCell {
                    station: get_opt_str(key, "station")?,
                    status: get_str(key, "status")?.parse().map_err(corrupt)?,
                    count: get_int(d, "count")? as u64,
                    oldest_update: get_time(d, "oldest")?,
                })
            })
            .collect()
    }
}
