//! The hash-chained audit log.
//!
//! Each record's hash is SHA-256 over the previous record's hash and a canonical encoding
//! of the record's own fields, so editing a record breaks its own hash, inserting or deleting
//! one breaks the link of the next, and deleting the tail disagrees with the head the store
//! keeps beside the chain. [`verify`] walks the chain and reports every break it finds.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{AuditRecord, NewAudit, Store, StoreError};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a record with sequence `seq` following `prev_hash`.
pub fn link_hash(prev_hash: &str, seq: u64, entry: &NewAudit) -> String {
    // serde_json writes struct fields in declaration order and `details` maps sorted (no
    // `preserve_order` feature), so this encoding is canonical for a given record.
    #[derive(Serialize)]
    struct Canonical<'a> {
        seq: u64,
        at: String,
        actor: &'a str,
        action: &'a str,
        target: &'a str,
        details: &'a serde_json::Value,
        ip: &'a Option<String>,
    }
    let at = entry
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let canonical = Canonical {
        seq,
        at,
        actor: &entry.actor,
        action: &entry.action,
        target: &entry.target,
        details: &entry.details,
        ip: &entry.ip,
    };
    let body = serde_json::to_vec(&canonical).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(&body);
    hex::encode(h.finalize())
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: u64,
    pub problem: String,
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub records: u64,
    pub ok: bool,
    pub breaks: Vec<ChainBreak>,
}

/// Walks the whole chain in pages and reports every edited, inserted or deleted record.
pub async fn verify(store: &dyn Store) -> Result<ChainReport, StoreError> {
    let mut breaks = Vec::new();
    let mut prev_hash = GENESIS.to_string();
    let mut expected_seq = 1u64;
    let mut after = 0u64;
    let mut records = 0u64;
    loop {
        let page = store.audit_records(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            records += 1;
            check_record(r, &prev_hash, expected_seq, &mut breaks);
            prev_hash = r.hash.clone();
            expected_seq = r.seq + 1;
            after = r.seq;
        }
    }
    match store.audit_head().await? {
        Some(head) if head.seq != after || head.hash != prev_hash => breaks.push(ChainBreak {
            seq: head.seq,
            problem: format!(
                "the chain ends at record {after} but the head says {}: records at the end were deleted or the head was edited",
                head.seq
            ),
        }),
        None if records > 0 => breaks.push(ChainBreak {
            seq: after,
            problem: "records exist but the chain head is missing".into(),
        }),
        _ => {}
    }
    Ok(ChainReport {
        records,
        ok: breaks.is_empty(),
        breaks,
    })
}

fn check_record(r: &AuditRecord, prev_hash: &str, expected_seq: u64, breaks: &mut Vec<ChainBreak>) {
    if r.seq != expected_seq {
        breaks.push(ChainBreak {
            seq: r.seq,
            problem: format!(
                "sequence jumps from {} to {}: record(s) deleted",
                expected_seq.saturating_sub(1),
                r.seq
            ),
        });
    }
    if r.prev_hash != prev_hash {
        breaks.push(ChainBreak {
            seq: r.seq,
            problem: "does not link to the record before it: a record was inserted, deleted or edited before it".into(),
        });
    }
    if link_hash(&r.prev_hash, r.seq, &r.entry) != r.hash {
        breaks.push(ChainBreak {
            seq: r.seq,
            problem: "its content does not match its hash: the record was edited".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(action: &str) -> NewAudit {
        NewAudit {
            at: datetime!(2026-11-25 10:00 UTC),
            actor: "alice".into(),
            action: action.into(),
            target: "batch:B-2026-0001".into(),
            details: serde_json::json!({"reason": "scale drift", "b": 1, "a": 2}),
            ip: Some("10.0.0.1".into()),
        }
    }

    #[test]
    fn hash_depends_on_every_field_and_the_link() {
        let e = entry("flag_approved");
        let h = link_hash(GENESIS, 1, &e);
        assert_eq!(h, link_hash(GENESIS, 1, &e));
        assert_ne!(h, link_hash(GENESIS, 2, &e));
        assert_ne!(h, link_hash(&h, 1, &e));
        let mut edited = e.clone();
        edited.details = serde_json::json!({"reason": "scale drift!", "b": 1, "a": 2});
        assert_ne!(h, link_hash(GENESIS, 1, &edited));
        let mut edited = e;
        edited.ip = None;
        assert_ne!(h, link_hash(GENESIS, 1, &edited));
    }
}
