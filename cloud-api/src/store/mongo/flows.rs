//! Flow versions on MongoDB: one document per `(flow_id, version)` (`_id` = `flow_id@version`,
//! unique index on `flow_id + version`), shaped like the seed's flow document (the domain's
//! JSON for `Flow`: flow_id, version, status, effective_date, name, pipeline, stations, …).
//!
//! Status changes are conditional replaces (`{_id, status: "draft"}` → published, …) in a
//! transaction that also touches a per-flow lock document in `counters`, so two concurrent
//! publishes of the same flow conflict and cannot leave two active versions.

use futures_util::TryStreamExt;
use metcon_shared::flow::Flow;
use mongodb::bson::{doc, Document};
use mongodb::ClientSession;

use super::codec::*;
use super::txn::{dup, transaction, Abort, TxResult};
use super::MongoStore;
use crate::store::{NewAudit, StoreError, StoreResult};

fn flow_key(flow_id: &str, version: u32) -> String {
    format!("{flow_id}@{version}")
}

pub(super) fn flow_doc(f: &Flow) -> StoreResult<Document> {
    let mut d = Document::new();
    d.insert("_id", flow_key(&f.flow_id, f.version));
    d.extend(to_doc(f)?);
    Ok(d)
}

pub(super) fn flow_from(mut d: Document) -> StoreResult<Flow> {
    d.remove("_id");
    from_doc(&d)
}

impl MongoStore {
    /// Serializes status changes of one flow: every such transaction writes this document.
    async fn lock_flow(&self, s: &mut ClientSession, flow_id: &str) -> TxResult<()> {
        match self
            .c
            .counters
            .update_one(
                doc! { "_id": format!("flow_lock:{flow_id}") },
                doc! { "$inc": { "n": 1_i64 } },
            )
            .upsert(true)
            .session(&mut *s)
            .await
        {
            Ok(_) => Ok(()),
            // Two first-ever publishes racing to create the lock: run again.
            Err(e) if is_duplicate(&e) => Err(Abort::Retry),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the stored version of `f` if its status is still `from`.
    async fn replace_if(&self, s: &mut ClientSession, f: &Flow, from: &str) -> TxResult<()> {
        let r = self
            .c
            .flows
            .replace_one(
                doc! { "_id": flow_key(&f.flow_id, f.version), "status": from },
                flow_doc(f)?,
            )
            .session(&mut *s)
            .await?;
        if r.matched_count == 0 {
            return Err(Abort::Store(StoreError::Conflict));
        }
        Ok(())
    }

    pub(super) async fn insert_flow_version(
        &self,
        f: &Flow,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let d = flow_doc(f)?;
        transaction!(self, |s| {
            self.c
                .flows
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("flow {} version {}", f.flow_id, f.version)))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    pub(super) async fn replace_draft(&self, f: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        transaction!(self, |s| {
            self.replace_if(&mut s, f, "draft").await?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    pub(super) async fn publish(
        &self,
        published: &Flow,
        archived: Option<&Flow>,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        transaction!(self, |s| {
            self.lock_flow(&mut s, &published.flow_id).await?;
            if let Some(a) = archived {
                self.replace_if(&mut s, a, "active").await?;
            }
            // No other active version may remain (a concurrent publish would leave two).
            let others = self
                .c
                .flows
                .count_documents(doc! {
                    "flow_id": &published.flow_id,
                    "status": "active",
                    "version": { "$ne": published.version as i64 },
                })
                .session(&mut s)
                .await?;
            if others > 0 {
                return Err(Abort::Store(StoreError::Conflict));
            }
            self.replace_if(&mut s, published, "draft").await?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    pub(super) async fn archive(&self, f: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        transaction!(self, |s| {
            self.lock_flow(&mut s, &f.flow_id).await?;
            self.replace_if(&mut s, f, "active").await?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    pub(super) async fn find_flow(
        &self,
        filter: Document,
        sort: Option<Document>,
    ) -> StoreResult<Option<Flow>> {
        let d = self
            .c
            .flows
            .find_one(filter)
            .sort(sort.unwrap_or_default())
            .await
            .map_err(backend)?;
        d.map(flow_from).transpose()
    }

    pub(super) async fn find_flows(&self, filter: Document) -> StoreResult<Vec<Flow>> {
        let docs: Vec<Document> = self
            .c
            .flows
            .find(filter)
            .sort(doc! { "flow_id": 1, "version": 1 })
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.into_iter().map(flow_from).collect()
    }

    pub(super) async fn latest_flows(&self) -> StoreResult<Vec<Flow>> {
        let pipeline = vec![
            doc! { "$sort": { "flow_id": 1, "version": -1 } },
            doc! { "$group": { "_id": "$flow_id", "latest": { "$first": "$$ROOT" } } },
            doc! { "$replaceRoot": { "newRoot": "$latest" } },
            doc! { "$sort": { "flow_id": 1 } },
        ];
        let docs: Vec<Document> = self
            .c
            .flows
            .aggregate(pipeline)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.into_iter().map(flow_from).collect()
    }
}
