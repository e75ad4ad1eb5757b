//! The audit chain on MongoDB: `audit` holds one document per record (`_id` = sequence
//! number, fields as hashed), `audit_head` the last link.
//!
//! Records are appended inside the transaction of the write they describe. The head is
//! updated first and conditionally on the sequence number read in the same transaction, so
//! of two concurrent writers one wins and the other's transaction is rerun on top of the new
//! head: the chain never forks, and the unique `_id` would refuse a second record with the
//! same number even if a server failed to detect the conflict.

use mongodb::bson::{doc, Bson, Document};
use mongodb::ClientSession;

use super::codec::*;
use super::txn::{transaction, Abort, TxResult};
use super::MongoStore;
use crate::audit;
use crate::store::{AuditCursor, AuditFilter, AuditHead, AuditRecord, NewAudit, StoreResult};

const HEAD: &str = "head";

fn record_doc(r: &AuditRecord) -> StoreResult<Document> {
    let e = &r.entry;
    Ok(doc! {
        "_id": r.seq as i64,
        "at": e.at.format(&time::format_description::well_known::Rfc3339).map_err(backend)?,
        "actor": &e.actor,
        "action": &e.action,
        "target": &e.target,
        "details": json_to_bson(&e.details)?,
        "ip": opt_str(e.ip.as_deref()),
        "prev_hash": &r.prev_hash,
        "hash": &r.hash,
    })
}

fn record_from(d: &Document) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: get_int(d, "_id")? as u64,
        entry: NewAudit {
            at: time::OffsetDateTime::parse(
                get_str(d, "at")?,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(corrupt)?,
            actor: get_str(d, "actor")?.to_string(),
            action: get_str(d, "action")?.to_string(),
            target: get_str(d, "target")?.to_string(),
            details: bson_to_json(d.get("details").unwrap_or(&Bson::Null))?,
            ip: get_opt_str(d, "ip")?,
        },
        prev_hash: get_str(d, "prev_hash")?.to_string(),
        hash: get_str(d, "hash")?.to_string(),
    })
}

impl MongoStore {
    /// Extends the chain with `entries` inside the caller's transaction.
    pub(super) async fn append_audit_tx(
        &self,
        s: &mut ClientSession,
        entries: &[NewAudit],
    ) -> TxResult<Vec<AuditRecord>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let head = self
            .c
            .audit_head
            .find_one(doc! { "_id": HEAD })
            .session(&mut *s)
            .await?;
        let (start, mut prev) = match &head {
            Some(h) => (get_int(h, "seq")? as u64, get_str(h, "hash")?.to_string()),
            None => (0, audit::GENESIS.to_string()),
        };
        let mut out = Vec::with_capacity(entries.len());
        let mut seq = start;
        for e in entries {
            seq += 1;
            let hash = audit::link_hash(&prev, seq, e);
            out.push(AuditRecord {
                seq,
                entry: e.clone(),
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        // The head first: this is where concurrent writers collide.
        if head.is_some() {
            let r = self
                .c
                .audit_head
                .update_one(
                    doc! { "_id": HEAD, "seq": start as i64 },
                    doc! { "$set": { "seq": seq as i64, "hash": &prev } },
                )
                .session(&mut *s)
                .await?;
            if r.matched_count == 0 {
                return Err(Abort::Retry);
            }
        } else {
            match self
                .c
                .audit_head
                .insert_one(doc! { "_id": HEAD, "seq": seq as i64, "hash": &prev })
                .session(&mut *s)
                .await
            {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => return Err(Abort::Retry),
                Err(e) => return Err(e.into()),
            }
        }
        let docs = out
            .iter()
            .map(record_doc)
            .collect::<StoreResult<Vec<_>>>()?;
        match self.c.audit.insert_many(docs).session(&mut *s).await {
            Ok(_) => Ok(out),
            Err(e) if is_duplicate(&e) => Err(Abort::Retry),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn append_audit_one(&self, entry: &NewAudit) -> StoreResult<AuditRecord> {
        let mut records = transaction!(self, |s| {
            self.append_audit_tx(&mut s, std::slice::from_ref(entry))
                .await
        })?;
        records
            .pop()
            .ok_or_else(|| backend("audit append returned nothing"))
    }

    pub(super) async fn audit_page(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        use futures_util::TryStreamExt;
        let docs: Vec<Document> = self
            .c
            .audit
            .find(doc! { "_id": { "$gt": after as i64 } })
            .sort(doc! { "_id": 1 })
            .limit(limit as i64)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(record_from).collect()
    }

    /// The audit viewer's query: filters on the hashed fields, newest or oldest first.
    pub(super) async fn audit_find(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        use futures_util::TryStreamExt;
        let mut q = Document::new();
        let order = match cursor {
            AuditCursor::After(after) => {
                q.insert("_id", doc! { "$gt": after as i64 });
                1
            }
            AuditCursor::Before(before) => {
                if let Some(b) = before {
                    q.insert("_id", doc! { "$lt": b as i64 });
                }
                -1
            }
        };
        if let Some(a) = &filter.actor {
            q.insert("actor", a.as_str());
        }
        if let Some(a) = &filter.action {
            q.insert("action", a.as_str());
        }
        match &filter.target {
            Some(t) if filter.target_exact => {
                q.insert("target", t.as_str());
            }
            Some(t) => {
                q.insert("target", doc! { "$regex": literal_regex(t) });
            }
            None => {}
        }
        let (lower, upper) = filter.day_bounds();
        let mut at = Document::new();
        if let Some(l) = lower {
            at.insert("$gte", l);
        }
        if let Some(u) = upper {
            at.insert("$lt", u);
        }
        if !at.is_empty() {
            q.insert("at", at);
        }
        let docs: Vec<Document> = self
            .c
            .audit
            .find(q)
            .sort(doc! { "_id": order })
            .limit(i64::from(limit))
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(record_from).collect()
    }

    pub(super) async fn audit_head_doc(&self) -> StoreResult<Option<AuditHead>> {
        let head = self
            .c
            .audit_head
            .find_one(doc! { "_id": HEAD })
            .await
            .map_err(backend)?;
        head.map(|h| {
            Ok(AuditHead {
                seq: get_int(&h, "seq")? as u64,
                hash: get_str(&h, "hash")?.to_string(),
            })
        })
        .transpose()
    }

    /// Import: stores records exactly as they are (their hashes must still verify).
    pub(super) async fn load_audit_records(&self, records: &[AuditRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let docs = records
            .iter()
            .map(record_doc)
            .collect::<StoreResult<Vec<_>>>()?;
        self.c
            .audit
            .insert_many(docs)
            .await
            .map_err(map_write(|| "audit record".into()))?;
        Ok(())
    }

    pub(super) async fn store_audit_head(&self, head: &AuditHead) -> StoreResult<()> {
        self.c
            .audit_head
            .replace_one(
                doc! { "_id": HEAD },
                doc! { "_id": HEAD, "seq": head.seq as i64, "hash": &head.hash },
            )
            .upsert(true)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// A regular expression matching `text` literally (every non-alphanumeric escaped).
fn literal_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
