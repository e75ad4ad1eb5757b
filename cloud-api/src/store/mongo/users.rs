//! Users (`users`, unique `username`) and the one-time setup token (`setup_tokens`, at most
//! one document) on MongoDB.

use futures_util::TryStreamExt;
use metcon_shared::role::Role;
use mongodb::bson::{doc, Document};
use time::OffsetDateTime;

use super::codec::*;
use super::txn::{conflict_or_missing, dup, transaction, Abort};
use super::MongoStore;
use crate::store::{NewAudit, StoreError, StoreResult, User};

pub(super) fn user_doc(u: &User) -> Document {
    doc! {
        "_id": &u.id,
        "username": &u.username,
        "display_name": &u.display_name,
        "role": u.role.as_str(),
        "stations": &u.stations,
        "active": u.active,
        "password_hash": &u.password_hash,
        "created_at": ts(u.created_at),
        "updated_at": ts(u.updated_at),
    }
}

pub(super) fn user_from(d: &Document) -> StoreResult<User> {
    let stations = d
        .get_array("stations")
        .map_err(|_| corrupt("user stations"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| corrupt("user station"))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(User {
        id: get_str(d, "_id")?.to_string(),
        username: get_str(d, "username")?.to_string(),
        display_name: get_str(d, "display_name")?.to_string(),
        role: get_str(d, "role")?.parse().map_err(corrupt)?,
        stations,
        active: get_bool(d, "active")?,
        password_hash: get_str(d, "password_hash")?.to_string(),
        created_at: get_time(d, "created_at")?,
        updated_at: get_time(d, "updated_at")?,
    })
}

impl MongoStore {
    pub(super) async fn insert_user(&self, u: &User, audit: &[NewAudit]) -> StoreResult<()> {
        let d = user_doc(u);
        transaction!(self, |s| {
            self.c
                .users
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("user {}", u.username)))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    pub(super) async fn replace_user(
        &self,
        u: &User,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let expected = ts(expected);
        let set = doc! {
            "display_name": &u.display_name,
            "role": u.role.as_str(),
            "stations": &u.stations,
            "active": u.active,
            "password_hash": &u.password_hash,
            "updated_at": ts(u.updated_at),
        };
        let admin = doc! { "role": Role::Admin.as_str(), "active": true };
        transaction!(self, |s| {
            let Some(before) = self
                .c
                .users
                .find_one_and_update(
                    doc! { "_id": &u.id, "updated_at": &expected },
                    doc! { "$set": set.clone() },
                )
                .session(&mut s)
                .await?
            else {
                return Err(conflict_or_missing(&self.c.users, &mut s, &u.id, || {
                    format!("user {}", u.id)
                })
                .await);
            };
            let was_admin = before
                .get_str("role")
                .is_ok_and(|r| r == Role::Admin.as_str())
                && before.get_bool("active").unwrap_or(false);
            // Read in the transaction's snapshot. Two demotions at once both write the
            // audit head below, so one of them is retried and then sees the other's.
            if was_admin
                && self
                    .c
                    .users
                    .count_documents(admin.clone())
                    .session(&mut s)
                    .await?
                    == 0
            {
                return Err(Abort::Store(StoreError::LastAdmin));
            }
            if !u.active || before.get_str("password_hash").ok() != Some(u.password_hash.as_str()) {
                self.c
                    .sessions
                    .update_many(
                        doc! { "user_id": &u.id, "revoked_at": mongodb::bson::Bson::Null },
                        doc! { "$set": { "revoked_at": ts(u.updated_at) } },
                    )
                    .session(&mut s)
                    .await?;
            }
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }

    pub(super) async fn find_user(&self, filter: Document) -> StoreResult<Option<User>> {
        self.c
            .users
            .find_one(filter)
            .await
            .map_err(backend)?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    pub(super) async fn all_users(&self) -> StoreResult<Vec<User>> {
        let docs: Vec<Document> = self
            .c
            .users
            .find(doc! {})
            .sort(doc! { "username": 1 })
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter().map(user_from).collect()
    }

    pub(super) async fn replace_setup_token(
        &self,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        transaction!(self, |s| {
            self.c
                .setup_tokens
                .delete_many(doc! {})
                .session(&mut s)
                .await?;
            self.c
                .setup_tokens
                .insert_one(doc! { "_id": token_hash, "expires_at": ts(expires_at) })
                .session(&mut s)
                .await?;
            Ok(())
        })
    }

    pub(super) async fn use_setup_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        admin: &User,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let d = user_doc(admin);
        transaction!(self, |s| {
            let users = self
                .c
                .users
                .count_documents(doc! {})
                .session(&mut s)
                .await?;
            let deleted = self
                .c
                .setup_tokens
                .delete_one(doc! { "_id": token_hash, "expires_at": { "$gt": ts(now) } })
                .session(&mut s)
                .await?;
            if deleted.deleted_count == 0 || users > 0 {
                return Err(Abort::Store(StoreError::NotFound("setup token".into())));
            }
            self.c
                .users
                .insert_one(d.clone())
                .session(&mut s)
                .await
                .map_err(dup(|| format!("user {}", admin.username)))?;
            self.append_audit_tx(&mut s, audit).await?;
            Ok(())
        })
    }
}
