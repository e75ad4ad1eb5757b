//! The indexes of the MongoDB backend, created (idempotently) when the store opens.
//!
//! The seed's indexes — batches: `batch_number` (unique, per pipeline because numbers are
//! counted per pipeline), `status + current_station` (WIP board), `pipeline + status`,
//! `created_at`; flows: `flow_id + version` (unique), `status + effective_date`; photos:
//! `batch_id + event_id`, `uploaded_at` — plus what METCON's queries need: unique usernames,
//! sessions by user, refresh tokens by session, unique event ids, the read-model arrays by
//! time for reports, and a unique `(device_id, sequence)` on readings so that a re-delivered
//! reading is refused by the database (idempotent inserts for the ingest store).

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use super::codec::backend;
use crate::store::StoreResult;

fn index(name: &str, keys: Document, unique: bool) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .name(name.to_string())
                .unique(unique.then_some(true))
                .build(),
        )
        .build()
}

/// Every collection with its indexes.
fn all() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            "users",
            vec![index("username_unique", doc! { "username": 1 }, true)],
        ),
        (
            "sessions",
            vec![index("user", doc! { "user_id": 1 }, false)],
        ),
        (
            "refresh_tokens",
            vec![index("session", doc! { "session_id": 1 }, false)],
        ),
        (
            "flows",
            vec![
                index(
                    "flow_version_unique",
                    doc! { "flow_id": 1, "version": 1 },
                    true,
                ),
                index(
                    "status_effective",
                    doc! { "status": 1, "effective_date": 1 },
                    false,
                ),
            ],
        ),
        (
            "batches",
            vec![
                index(
                    "number_unique",
                    doc! { "pipeline": 1, "batch_number": 1 },
                    true,
                ),
                index(
                    "status_station",
                    doc! { "status": 1, "current_station": 1 },
                    false,
                ),
                index(
                    "pipeline_status",
                    doc! { "pipeline": 1, "status": 1 },
                    false,
                ),
                index("created_at", doc! { "created_at": 1 }, false),
                index("flow", doc! { "flow_id": 1, "flow_version": 1 }, false),
                index("event_id_unique", doc! { "events.event_id": 1 }, true),
                index("mass_checks_at", doc! { "mass_checks.at": 1 }, false),
                index("exceptions_at", doc! { "exceptions.raised_at": 1 }, false),
                index("visits_left", doc! { "visits.left_at": 1 }, false),
            ],
        ),
        (
            "photos",
            vec![
                index("batch_event", doc! { "batch_id": 1, "event_seq": 1 }, false),
                index(
                    "batch_uploaded",
                    doc! { "batch_id": 1, "uploaded_at": 1 },
                    false,
                ),
                index("sha256", doc! { "sha256": 1 }, false),
                index("uploaded_at", doc! { "uploaded_at": 1 }, false),
                index(
                    "device_uploaded",
                    doc! { "doc.source.device_id": 1, "uploaded_at": -1 },
                    false,
                ),
            ],
        ),
        (
            "readings",
            vec![
                index(
                    "device_sequence_unique",
                    doc! { "device_id": 1, "sequence": 1 },
                    true,
                ),
                index("unbound", doc! { "device_id": 1, "bound_batch": 1 }, false),
                index("received_at", doc! { "received_at": 1 }, false),
            ],
        ),
        (
            "devices",
            vec![index(
                "station_state",
                doc! { "station_id": 1, "state": 1 },
                false,
            )],
        ),
        (
            "device_keys",
            vec![index(
                "device_from",
                doc! { "device_id": 1, "from_seq": 1 },
                true,
            )],
        ),
        (
            "enrollment_codes",
            vec![index("device", doc! { "device_id": 1 }, false)],
        ),
        (
            "ingest_rejections",
            vec![
                index("at", doc! { "at": 1 }, false),
                index("device_seq", doc! { "device_id": 1, "seq": 1 }, false),
            ],
        ),
        ("arms", vec![index("batch", doc! { "batch_id": 1 }, false)]),
        (
            "calibrations",
            vec![index(
                "device_performed",
                doc! { "device_id": 1, "performed_at": 1 },
                false,
            )],
        ),
        (
            "presence_changes",
            vec![index("at", doc! { "at": 1 }, false)],
        ),
    ]
}

pub(super) async fn ensure(db: &Database) -> StoreResult<()> {
    for (collection, models) in all() {
        db.collection::<Document>(collection)
            .create_indexes(models)
            .await
            .map_err(|e| backend(format!("while creating the indexes of {collection}: {e}")))?;
    }
    Ok(())
}
