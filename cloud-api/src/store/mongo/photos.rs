//! [`PhotoStore`] on MongoDB: the seed's `photos` collection. The record is kept whole under
//! `doc`; the fields it is found by (`sha256`, `batch_id`, `event_seq`, `uploaded_at`) sit
//! beside it for the indexes (a device's frames are found by `doc.source.device_id`).

use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use uuid::Uuid;

use super::codec::*;
use super::txn::{dup, transaction};
use super::MongoStore;
use crate::store::photos::{PhotoRecord, PhotoStore};
use crate::store::{NewAudit, StoreError, StoreResult};

fn photo_doc(p: &PhotoRecord) -> StoreResult<Document> {
    Ok(doc! {
        "_id": p.id.to_string(),
        "sha256": &p.sha256,
        "batch_id": p.batch_id.map(|b| Bson::String(b.to_string())).unwrap_or(Bson::Null),
        "event_seq": p.event_seq.map(|s| Bson::Int64(s as i64)).unwrap_or(Bson::Null),
        "uploaded_at": ts(p.uploaded_at),
        "doc": to_doc(p)?,
    })
}

fn photo_from(d: &Document) -> StoreResult<PhotoRecord> {
    from_doc(get_doc(d, "doc")?)
}

impl MongoStore {
    async fn find_photos(&self, filter: Document) -> StoreResult<Vec<PhotoRecord>> {
        use futures_util::TryStreamExt;
        let docs: Vec<Document> = self
            .c
            .photos
            .find(filter)
            .sort(doc! { "uploaded_at": 1, "_id": 1 })
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(photo_from).collect()
    }
}

#[async_trait]
impl PhotoStore for MongoStore {
    async fn insert_photo(&self, photo: &PhotoRecord, audit: &[NewAudit]) -> StoreResult<()> {
        let d = photo_doc(photo)?;
        transaction!(self, |s| {
            self.c
                .photos
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("photo {}", photo.id)))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    async fn link_photo_event(&self, id: Uuid, event_seq: u64) -> StoreResult<()> {
        let Some(current) = self.photo(id).await? else {
            return Err(StoreError::NotFound(format!("photo {id}")));
        };
        match current.event_seq {
            Some(s) if s == event_seq => return Ok(()),
            Some(_) => return Err(StoreError::Conflict),
            None => {}
        }
        let mut linked = current;
        linked.event_seq = Some(event_seq);
        // Only an unlinked record is updated: a concurrent link loses with a conflict.
        let r = self
            .c
            .photos
            .update_one(
                doc! { "_id": id.to_string(), "event_seq": Bson::Null },
                doc! { "$set": { "event_seq": event_seq as i64, "doc": to_doc(&linked)? } },
            )
            .await
            .map_err(backend)?;
        if r.matched_count == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn photo(&self, id: Uuid) -> StoreResult<Option<PhotoRecord>> {
        self.c
            .photos
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(backend)?
            .as_ref()
            .map(photo_from)
            .transpose()
    }

    async fn photos_by_sha256(&self, sha256: &str) -> StoreResult<Vec<PhotoRecord>> {
        self.find_photos(doc! { "sha256": sha256 }).await
    }

    async fn photos_after(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<PhotoRecord>> {
        use futures_util::TryStreamExt;
        let filter = match after {
            Some(a) => doc! { "_id": { "$gt": a.to_string() } },
            None => doc! {},
        };
        let docs: Vec<Document> = self
            .c
            .photos
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(photo_from).collect()
    }

    async fn latest_device_photo(&self, device_id: &str) -> StoreResult<Option<PhotoRecord>> {
        self.c
            .photos
            .find_one(doc! { "doc.source.kind": "device", "doc.source.device_id": device_id })
            .sort(doc! { "uploaded_at": -1, "_id": -1 })
            .await
            .map_err(backend)?
            .as_ref()
            .map(photo_from)
            .transpose()
    }

    async fn photos_for_batch(&self, batch_id: Uuid) -> StoreResult<Vec<PhotoRecord>> {
        self.find_photos(doc! { "batch_id": batch_id.to_string() })
            .await
    }
}
