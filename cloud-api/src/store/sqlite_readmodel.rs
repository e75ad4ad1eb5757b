//! The analytics read model of the SQLite backend: tables derived from batch events, written
//! in the same transaction as the events (so a report never sees an event without its row or
//! the other way round), and rebuilt from the events when the tables are first created.
//!
//! - `rm_mass_checks`: one row per `MassChecked`, masses as decimal text (as recorded) and as
//!   exact integers of 0.0001 mg; `accepted` once the weighing completed its step.
//! - `rm_mass_daily`: per (day, pipeline, flow version, station, operator, tolerance status)
//!   counts and sums, so summaries and breakdowns never scan the detail rows.
//! - `rm_exceptions`: flags (with their decision), overrides, blocks (with the unblock) and
//!   manually entered masses.
//! - `rm_station_visits`: a batch's stay at a station, for cycle times and the WIP board.

use metcon_shared::batch::{
    BatchEvent, BatchState, BatchStatus, FlagKind, MassSource, RecordedEvent,
};
use metcon_shared::mass::Mass;
use rusqlite::{params, OptionalExtension, Transaction};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::sqlite::{backend, ts};
use super::StoreResult;
use crate::reports::fineness;
use crate::reports::MG_E4;

/// Schema version 2: the read model.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE rm_mass_checks (
    id INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    batch_number TEXT NOT NULL,
    batch_created_at TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    station TEXT NOT NULL,
    step TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    operator TEXT NOT NULL,
    at TEXT NOT NULL,
    expected TEXT NOT NULL,
    expected_unit TEXT NOT NULL,
    actual TEXT NOT NULL,
    actual_unit TEXT NOT NULL,
    variance TEXT NOT NULL,
    variance_pct TEXT,
    expected_e4 INTEGER NOT NULL,
    actual_e4 INTEGER NOT NULL,
    variance_e4 INTEGER NOT NULL,
    variance_pct_e4 INTEGER,
    within INTEGER NOT NULL,
    source TEXT NOT NULL,
    fineness_permille TEXT,
    accepted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (batch_id, seq)
);
CREATE INDEX rm_mc_at ON rm_mass_checks(at);
CREATE INDEX rm_mc_station ON rm_mass_checks(station, at);
CREATE INDEX rm_mc_operator ON rm_mass_checks(operator, at);
CREATE INDEX rm_mc_pipeline ON rm_mass_checks(pipeline, at);
CREATE INDEX rm_mc_flow ON rm_mass_checks(flow_id, flow_version, at);
CREATE INDEX rm_mc_within ON rm_mass_checks(within, at);
CREATE INDEX rm_mc_balance ON rm_mass_checks(accepted, batch_created_at, batch_id, seq);
CREATE TABLE rm_mass_daily (
    day TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    station TEXT NOT NULL,
    operator TEXT NOT NULL,
    within INTEGER NOT NULL,
    n INTEGER NOT NULL,
    n_pct INTEGER NOT NULL,
    sum_pct_e4 INTEGER NOT NULL,
    sum_abs_pct_e4 INTEGER NOT NULL,
    sum_variance_e4 INTEGER NOT NULL,
    PRIMARY KEY (day, pipeline, flow_id, flow_version, station, operator, within)
);
CREATE TABLE rm_exceptions (
    id INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    batch_number TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    station TEXT NOT NULL,
    step TEXT NOT NULL,
    raised_by TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    decision TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    decision_reason TEXT,
    UNIQUE (batch_id, seq, kind)
);
CREATE INDEX rm_ex_at ON rm_exceptions(raised_at);
CREATE INDEX rm_ex_kind ON rm_exceptions(kind, raised_at);
CREATE TABLE rm_station_visits (
    id INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    batch_number TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    station TEXT NOT NULL,
    entered_at TEXT NOT NULL,
    left_at TEXT,
    duration_ms INTEGER
);
CREATE INDEX rm_sv_batch_open ON rm_station_visits(batch_id) WHERE left_at IS NULL;
CREATE INDEX rm_sv_left ON rm_station_visits(left_at) WHERE left_at IS NOT NULL;
CREATE INDEX rm_sv_group ON rm_station_visits(station, flow_id, flow_version, duration_ms) WHERE left_at IS NOT NULL;
"#;

/// A mass as an integer number of 0.0001 mg. Every supported unit is an exact multiple of
/// 0.0001 mg, so this is exact for any value recorded to the scale's resolution; digits
/// beyond 0.0001 mg (no balance shows them) are rounded half away from zero.
pub(crate) fn mass_e4(m: &Mass) -> StoreResult<i64> {
    decimal_e4(m.to_milligrams())
}

fn decimal_e4(d: Decimal) -> StoreResult<i64> {
    (d * Decimal::from(MG_E4))
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .ok_or_else(|| backend(format!("mass {d} mg is out of range")))
}

fn source_name(s: &MassSource) -> &'static str {
    match s {
        MassSource::Manual | MassSource::ManualUnreadablePhoto { .. } => "manual",
        MassSource::Device { .. } => "device",
        MassSource::Ocr { .. } => "ocr",
    }
}

/// Projects `events`, appended together to the batch whose state after them is `state`, into
/// the read model. `station_after` is the batch's current station after the events.
pub(crate) fn project(
    tx: &Transaction<'_>,
    state: &BatchState,
    events: &[RecordedEvent],
    station_after: Option<&str>,
) -> StoreResult<()> {
    let batch_id = state.batch_id.to_string();
    for rec in events {
        match &rec.event {
            BatchEvent::MassChecked {
                station_id,
                step_id,
                step_index,
                expected,
                actual,
                check,
                source,
                note,
                ..
            } => {
                let pct_e4 = check
                    .variance_pct
                    .map(|p| {
                        (p * Decimal::from(10_000))
                            .round_dp(0)
                            .to_i64()
                            .ok_or_else(|| backend("variance percentage out of range"))
                    })
                    .transpose()?;
                let expected_e4 = mass_e4(expected)?;
                let actual_e4 = mass_e4(actual)?;
                let fine = note.as_deref().and_then(fineness::from_note);
                tx.prepare_cached(
                    "INSERT INTO rm_mass_checks (batch_id, seq, batch_number, batch_created_at, pipeline, flow_id, flow_version,
                       station, step, step_index, operator, at, expected, expected_unit, actual, actual_unit, variance,
                       variance_pct, expected_e4, actual_e4, variance_e4, variance_pct_e4, within, source, fineness_permille)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
                )
                .map_err(backend)?
                .execute(params![
                    batch_id,
                    rec.seq as i64,
                    state.batch_number,
                    ts(state.created_at),
                    state.pipeline,
                    state.flow_id,
                    state.flow_version,
                    station_id,
                    step_id,
                    *step_index as i64,
                    rec.actor.username,
                    ts(rec.at),
                    expected.value().to_string(),
                    expected.unit().symbol(),
                    actual.value().to_string(),
                    actual.unit().symbol(),
                    check.variance.to_string(),
                    check.variance_pct.map(|p| p.to_string()),
                    expected_e4,
                    actual_e4,
                    actual_e4 - expected_e4,
                    pct_e4,
                    check.within as i64,
                    source_name(source),
                    fine.map(|f| f.to_string()),
                ])
                .map_err(backend)?;
                tx.prepare_cached(
                    "INSERT INTO rm_mass_daily (day, pipeline, flow_id, flow_version, station, operator, within, n, n_pct, sum_pct_e4, sum_abs_pct_e4, sum_variance_e4)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10, ?11)
                     ON CONFLICT DO UPDATE SET n = n + 1, n_pct = n_pct + excluded.n_pct, sum_pct_e4 = sum_pct_e4 + excluded.sum_pct_e4,
                       sum_abs_pct_e4 = sum_abs_pct_e4 + excluded.sum_abs_pct_e4, sum_variance_e4 = sum_variance_e4 + excluded.sum_variance_e4",
                )
                .map_err(backend)?
                .execute(params![
                    &ts(rec.at)[..10],
                    state.pipeline,
                    state.flow_id,
                    state.flow_version,
                    station_id,
                    rec.actor.username,
                    check.within as i64,
                    pct_e4.is_some() as i64,
                    pct_e4.unwrap_or(0),
                    pct_e4.unwrap_or(0).abs(),
                    actual_e4 - expected_e4,
                ])
                .map_err(backend)?;
                if source.is_manual() {
                    insert_exception(
                        tx,
                        state,
                        rec,
                        "manual_entry",
                        station_id,
                        step_id,
                        note.as_deref().unwrap_or(""),
                        "recorded",
                    )?;
                }
            }
            BatchEvent::StepCompleted {
                step_index,
                payload: None,
                ..
            } => {
                // A mass-check step completes through its weighing (within tolerance) or
                // through the approval of its out-of-tolerance flag: either way the latest
                // weighing of that step is the accepted mass.
                tx.prepare_cached(
                    "UPDATE rm_mass_checks SET accepted = 1 WHERE id = (
                       SELECT id FROM rm_mass_checks WHERE batch_id = ?1 AND step_index = ?2 ORDER BY seq DESC LIMIT 1)",
                )
                .map_err(backend)?
                .execute(params![batch_id, *step_index as i64])
                .map_err(backend)?;
            }
            BatchEvent::FlagRaised {
                kind,
                station_id,
                step_id,
                reason,
                ..
            } => {
                let k = match kind {
                    FlagKind::OutOfTolerance => "out_of_tolerance",
                    FlagKind::Manual => "manual_flag",
                    FlagKind::OcrMismatch => "ocr_mismatch",
                    FlagKind::ManualEntry => "unreadable_photo",
                };
                insert_exception(tx, state, rec, k, station_id, step_id, reason, "open")?;
            }
            BatchEvent::FlagApproved { flag_id, reason }
            | BatchEvent::FlagRejected { flag_id, reason } => {
                let decision = if matches!(rec.event, BatchEvent::FlagApproved { .. }) {
                    "approved"
                } else {
                    "rejected"
                };
                tx.prepare_cached(
                    "UPDATE rm_exceptions SET decision = ?3, decided_by = ?4, decided_at = ?5, decision_reason = ?6
                     WHERE batch_id = ?1 AND seq = ?2 AND kind IN ('out_of_tolerance', 'manual_flag', 'ocr_mismatch', 'unreadable_photo')",
                )
                .map_err(backend)?
                .execute(params![batch_id, *flag_id as i64, decision, rec.actor.username, ts(rec.at), reason])
                .map_err(backend)?;
            }
            BatchEvent::Overridden {
                to_step_id, reason, ..
            } => {
                let station = station_after.unwrap_or("");
                insert_exception(
                    tx, state, rec, "override", station, to_step_id, reason, "applied",
                )?;
                tx.prepare_cached(
                    "UPDATE rm_exceptions SET decided_by = ?3, decided_at = ?4, decision_reason = ?5
                     WHERE batch_id = ?1 AND seq = ?2 AND kind = 'override'",
                )
                .map_err(backend)?
                .execute(params![batch_id, rec.seq as i64, rec.actor.username, ts(rec.at), reason])
                .map_err(backend)?;
            }
            BatchEvent::Blocked { reason } => {
                let station = station_after.unwrap_or("");
                insert_exception(tx, state, rec, "blocked", station, "", reason, "open")?;
            }
            BatchEvent::Unblocked { reason } => {
                tx.prepare_cached(
                    "UPDATE rm_exceptions SET decision = 'unblocked', decided_by = ?2, decided_at = ?3, decision_reason = ?4
                     WHERE id = (SELECT id FROM rm_exceptions WHERE batch_id = ?1 AND kind = 'blocked' AND decision = 'open' ORDER BY seq DESC LIMIT 1)",
                )
                .map_err(backend)?
                .execute(params![batch_id, rec.actor.username, ts(rec.at), reason])
                .map_err(backend)?;
            }
            _ => {}
        }
    }
    if let Some(last) = events.last() {
        track_visit(tx, state, &batch_id, last, station_after)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_exception(
    tx: &Transaction<'_>,
    state: &BatchState,
    rec: &RecordedEvent,
    kind: &str,
    station: &str,
    step: &str,
    reason: &str,
    decision: &str,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO rm_exceptions (batch_id, seq, batch_number, pipeline, flow_id, flow_version, kind, station, step, raised_by, raised_at, reason, decision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .map_err(backend)?
    .execute(params![
        state.batch_id.to_string(),
        rec.seq as i64,
        state.batch_number,
        state.pipeline,
        state.flow_id,
        state.flow_version,
        kind,
        station,
        step,
        rec.actor.username,
        ts(rec.at),
        reason,
        decision
    ])
    .map_err(backend)?;
    Ok(())
}

/// Closes the open station visit and opens the next one when the batch changed station.
fn track_visit(
    tx: &Transaction<'_>,
    state: &BatchState,
    batch_id: &str,
    last: &RecordedEvent,
    station_after: Option<&str>,
) -> StoreResult<()> {
    let open: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT id, station, entered_at FROM rm_station_visits WHERE batch_id = ?1 AND left_at IS NULL",
        )
        .map_err(backend)?
        .query_row([batch_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(backend)?;
    if open.as_ref().map(|(_, s, _)| s.as_str()) == station_after {
        return Ok(());
    }
    let at = ts(last.at);
    if let Some((id, _, entered)) = open {
        let entered = super::sqlite::parse_ts(&entered)?;
        let ms = (last.at - entered).whole_milliseconds() as i64;
        tx.prepare_cached(
            "UPDATE rm_station_visits SET left_at = ?2, duration_ms = ?3 WHERE id = ?1",
        )
        .map_err(backend)?
        .execute(params![id, at, ms])
        .map_err(backend)?;
    }
    if let Some(station) = station_after {
        tx.prepare_cached(
            "INSERT INTO rm_station_visits (batch_id, batch_number, pipeline, flow_id, flow_version, station, entered_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?
        .execute(params![
            batch_id,
            state.batch_number,
            state.pipeline,
            state.flow_id,
            state.flow_version,
            station,
            at
        ])
        .map_err(backend)?;
    }
    Ok(())
}

/// The station a batch is at for the read model: none before it starts or once it is done.
pub(crate) fn visit_station(status: BatchStatus, current: Option<&str>) -> Option<&str> {
    match status {
        BatchStatus::Created | BatchStatus::Completed => None,
        _ => current,
    }
}

/// Fills the read model from the stored events (run once, when the tables are created on a
/// database that already has batches). Flows give each event's station-after.
pub(crate) fn rebuild(tx: &Transaction<'_>) -> StoreResult<()> {
    let mut flows = std::collections::HashMap::new();
    {
        let mut stmt = tx
            .prepare("SELECT flow_id, version, doc FROM flows")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (id, v, doc) = row.map_err(backend)?;
            let flow: metcon_shared::flow::Flow = serde_json::from_str(&doc)
                .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
            flows.insert((id, v), flow);
        }
    }
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM batches ORDER BY created_at")
        .map_err(backend)?
        .query_map([], |r| r.get(0))
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)?;
    for id in ids {
        let docs: Vec<String> = tx
            .prepare_cached("SELECT doc FROM batch_events WHERE batch_id = ?1 ORDER BY seq")
            .map_err(backend)?
            .query_map([&id], |r| r.get(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<_>>()
            .map_err(backend)?;
        let events: Vec<RecordedEvent> = docs
            .iter()
            .map(|d| serde_json::from_str(d).map_err(|e| super::StoreError::Corrupt(e.to_string())))
            .collect::<StoreResult<_>>()?;
        let Some(first) = events.first() else {
            continue;
        };
        let mut state = BatchState::from_created(first)
            .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
        let Some(flow) = flows.get(&(state.flow_id.clone(), state.flow_version)) else {
            continue;
        };
        for rec in &events[1..] {
            state
                .apply(rec)
                .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
            let station = flow
                .content
                .step_at(state.cursor)
                .map(|(s, _)| s.station_id.as_str());
            project(
                tx,
                &state,
                std::slice::from_ref(rec),
                visit_station(state.status, station),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::Connection;

    use crate::reports::generate::{generate, Options};
    use crate::store::sqlite::SqliteStore;
    use crate::store::Store;

    const TABLES: [(&str, &str); 4] = [
        ("rm_mass_checks", "batch_id, seq, operator, at, actual, actual_e4, variance_pct_e4, within, source, fineness_permille, accepted"),
        ("rm_mass_daily", "day, pipeline, flow_id, flow_version, station, operator, within, n, n_pct, sum_pct_e4, sum_abs_pct_e4, sum_variance_e4"),
        ("rm_exceptions", "batch_id, seq, kind, station, step, raised_by, raised_at, reason, decision, decided_by, decided_at, decision_reason"),
        ("rm_station_visits", "batch_id, station, entered_at, left_at, duration_ms"),
    ];

    fn dump(path: &std::path::Path) -> Vec<Vec<String>> {
        let c = Connection::open(path).expect("open");
        TABLES
            .iter()
            .map(|(t, cols)| {
                let mut stmt = c
                    .prepare(&format!("SELECT {cols} FROM {t} ORDER BY {cols}"))
                    .expect("prepare");
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map(|v| v.join("|"))
                })
                .expect("query")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("rows")
            })
            .collect()
    }

    /// A database that gets the read-model migration after it has history ends up with the
    /// same read model as one that had it all along.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_rebuild_from_events_equals_the_live_projection() {
        let dir = tempfile::tempdir().expect("temp dir");
        let live = dir.path().join("live.db");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&live).expect("open"));
        let opts = Options {
            batches: 120,
            days: 10,
            seed: 9,
            now: time::OffsetDateTime::now_utc(),
        };
        generate(store.clone(), &opts, |_| {})
            .await
            .expect("generate");
        drop(store);
        let expected = dump(&live);
        assert!(
            expected.iter().all(|t| !t.is_empty()),
            "every table has rows"
        );

        // The same history on a database from before the read model.
        let old = dir.path().join("old.db");
        std::fs::copy(&live, &old).expect("copy");
        {
            let c = Connection::open(&old).expect("open");
            c.execute_batch(
                "DROP TABLE rm_mass_checks; DROP TABLE rm_mass_daily; DROP TABLE rm_exceptions;
                 DROP TABLE rm_station_visits; DELETE FROM schema_migrations WHERE version >= 2;",
            )
            .expect("downgrade");
            // and the tables of later migrations, which run again after it
            for t in super::super::sqlite_devices::TABLES {
                c.execute_batch(&format!("DROP TABLE {t};"))
                    .expect("downgrade later migrations");
            }
            c.execute_batch("DROP TABLE photos;")
                .expect("downgrade the photo migration");
        }
        let reopened = SqliteStore::open(&old).expect("migrate and rebuild");
        drop(reopened);
        assert_eq!(dump(&old), expected);
    }
}
