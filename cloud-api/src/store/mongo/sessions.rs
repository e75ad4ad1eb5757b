//! Sessions (`sessions`) and rotating refresh tokens (`refresh_tokens`, `_id` = the token's
//! SHA-256, never the token) on MongoDB. Rotation runs in a transaction: the old token is
//! spent conditionally on being unspent, so of two clients presenting the same token one
//! rotates and the other is detected as reuse, which revokes the session.

use mongodb::bson::{doc, Bson, Document};
use time::OffsetDateTime;

use super::codec::*;
use super::txn::{dup, transaction, Abort};
use super::MongoStore;
use crate::store::{RefreshToken, RotateOutcome, Session, StoreResult};

pub(super) fn session_doc(s: &Session) -> Document {
    doc! {
        "_id": &s.id,
        "user_id": &s.user_id,
        "created_at": ts(s.created_at),
        "last_seen": ts(s.last_seen),
        "revoked_at": s.revoked_at.map(ts).map(Bson::String).unwrap_or(Bson::Null),
    }
}

pub(super) fn session_from(d: &Document) -> StoreResult<Session> {
    Ok(Session {
        id: get_str(d, "_id")?.to_string(),
        user_id: get_str(d, "user_id")?.to_string(),
        created_at: get_time(d, "created_at")?,
        last_seen: get_time(d, "last_seen")?,
        revoked_at: get_opt_time(d, "revoked_at")?,
    })
}

pub(super) fn token_doc(t: &RefreshToken, used_at: Option<OffsetDateTime>) -> Document {
    doc! {
        "_id": &t.token_hash,
        "session_id": &t.session_id,
        "user_id": &t.user_id,
        "expires_at": ts(t.expires_at),
        "used_at": used_at.map(ts).map(Bson::String).unwrap_or(Bson::Null),
    }
}

impl MongoStore {
    pub(super) async fn insert_session(&self, s: &Session, t: &RefreshToken) -> StoreResult<()> {
        let (sd, td) = (session_doc(s), token_doc(t, None));
        transaction!(self, |tx| {
            self.c
                .sessions
                .insert_one(sd.clone())
                .session(&mut tx)
                .await
                .map_err(dup(|| format!("session {}", s.id)))?;
            self.c
                .refresh_tokens
                .insert_one(td.clone())
                .session(&mut tx)
                .await
                .map_err(dup(|| "refresh token".into()))?;
            Ok(())
        })
    }

    pub(super) async fn find_session(&self, id: &str) -> StoreResult<Option<Session>> {
        self.c
            .sessions
            .find_one(doc! { "_id": id })
            .await
            .map_err(backend)?
            .as_ref()
            .map(session_from)
            .transpose()
    }

    pub(super) async fn touch(&self, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        self.c
            .sessions
            .update_one(
                doc! { "_id": id, "last_seen": { "$lt": ts(at) } },
                doc! { "$set": { "last_seen": ts(at) } },
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(super) async fn revoke(&self, mut filter: Document, at: OffsetDateTime) -> StoreResult<()> {
        filter.insert("revoked_at", Bson::Null);
        self.c
            .sessions
            .update_many(filter, doc! { "$set": { "revoked_at": ts(at) } })
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(super) async fn rotate(
        &self,
        old_hash: &str,
        new: &RefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RotateOutcome> {
        transaction!(self, |tx| {
            let Some(t) = self
                .c
                .refresh_tokens
                .find_one(doc! { "_id": old_hash })
                .session(&mut tx)
                .await?
            else {
                return Ok(RotateOutcome::Invalid);
            };
            let session_id = get_str(&t, "session_id")?.to_string();
            let Some(sd) = self
                .c
                .sessions
                .find_one(doc! { "_id": &session_id })
                .session(&mut tx)
                .await?
            else {
                return Ok(RotateOutcome::Invalid);
            };
            if get_opt_str(&t, "used_at")?.is_some() {
                self.c
                    .sessions
                    .update_one(
                        doc! { "_id": &session_id, "revoked_at": Bson::Null },
                        doc! { "$set": { "revoked_at": ts(now) } },
                    )
                    .session(&mut tx)
                    .await?;
                return Ok(RotateOutcome::Reused);
            }
            let session = session_from(&sd)?;
            if session.revoked_at.is_some() || get_time(&t, "expires_at")? <= now {
                return Ok(RotateOutcome::Invalid);
            }
            let spent = self
                .c
                .refresh_tokens
                .update_one(
                    doc! { "_id": old_hash, "used_at": Bson::Null },
                    doc! { "$set": { "used_at": ts(now) } },
                )
                .session(&mut tx)
                .await?;
            if spent.matched_count == 0 {
                // Spent by a concurrent rotation after this transaction's snapshot.
                return Err(Abort::Retry);
            }
            let fresh = RefreshToken {
                session_id: session_id.clone(),
                user_id: session.user_id.clone(),
                ..new.clone()
            };
            self.c
                .refresh_tokens
                .insert_one(token_doc(&fresh, None))
                .session(&mut tx)
                .await
                .map_err(dup(|| "refresh token".into()))?;
            Ok(RotateOutcome::Rotated(Session {
                revoked_at: None,
                ..session
            }))
        })
    }
}
