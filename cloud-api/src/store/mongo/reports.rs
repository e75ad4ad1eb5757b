//! Report queries of the MongoDB backend ([`ReportStore`]) as aggregation pipelines over the
//! read model kept in each batch document (see `projection`).
//!
//! Each query first matches whole batches (batch-level filters, and `$elemMatch` on the
//! array it reads so indexes on `mass_checks.at` etc. apply), unwinds the array, matches the
//! rows, then groups (`$group`, `$facet` for the mass balance) or sorts and pages. The
//! numbers are the same integers the SQLite backend sums, so every summary is identical;
//! detail rows come in the same order, with row ids built as `n · 2²⁰ + seq` (or the visit's
//! position) from the batch's insertion number `n`, so ties break like SQLite's row ids.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use time::OffsetDateTime;

use super::codec::*;
use super::MongoStore;
use crate::reports::*;
use crate::store::sqlite_query::DEFAULT_STUCK_HOURS;
use crate::store::StoreResult;

/// Row ids: the batch's insertion number times this, plus the position within the batch.
const ROW_ID_BATCH: i64 = 1 << 20;

/// A sort key that sorts after every timestamp (SQLite's `COALESCE(entered_at, '9999')`).
const NEVER: &str = "9999";

fn day_range(f: &ReportFilter) -> Option<Document> {
    let mut d = Document::new();
    if let Some(from) = f.from {
        d.insert("$gte", ts(from.midnight().assume_utc()));
    }
    if let Some(next) = f.to.and_then(|t| t.next_day()) {
        d.insert("$lt", ts(next.midnight().assume_utc()));
    }
    (!d.is_empty()).then_some(d)
}

/// Batch-level conditions: pipeline and flow version.
fn batch_level(f: &ReportFilter, with_flow: bool) -> Document {
    let mut d = Document::new();
    if let Some(p) = &f.pipeline {
        d.insert("pipeline", p);
    }
    if with_flow {
        if let Some(id) = &f.flow_id {
            d.insert("flow_id", id);
        }
        if let Some(v) = f.flow_version {
            d.insert("flow_version", v as i64);
        }
    }
    d
}

/// `$match` on batches having an element of `array` matching `elem`, then `$unwind` and
/// `$match` of the unwound elements.
fn unwind_matching(array: &str, mut batch: Document, elem: Document) -> Vec<Document> {
    batch.insert(array, doc! { "$elemMatch": elem.clone() });
    let mut unwound = Document::new();
    for (k, v) in elem {
        unwound.insert(format!("{array}.{k}"), v);
    }
    vec![
        doc! { "$match": batch },
        // Only what rows need: not the events, state and other arrays of each batch.
        doc! { "$project": {
            "n": 1, "batch_number": 1, "pipeline": 1, "flow_id": 1, "flow_version": 1,
            "created_at": 1, array: 1,
        } },
        doc! { "$unwind": format!("${array}") },
        doc! { "$match": unwound },
    ]
}

/// `$addFields id` = n · 2²⁰ + `$<pos>`.
fn row_id(pos: &str) -> Document {
    doc! { "$addFields": { "id": { "$add": [ { "$multiply": ["$n", ROW_ID_BATCH] }, pos ] } } }
}

/// Offset or keyset window over rows sorted by (`key`, `id`) in direction `dir` (1 or −1).
fn window(p: &mut Vec<Document>, w: &Window, key: &str, dir: i32) -> u32 {
    let op = if dir < 0 { "$lt" } else { "$gt" };
    match w {
        Window::Offset { offset, limit } => {
            p.push(doc! { "$sort": { key: dir, "id": dir } });
            if *offset > 0 {
                p.push(doc! { "$skip": *offset as i64 });
            }
            p.push(doc! { "$limit": *limit as i64 });
            *limit
        }
        Window::After { cursor, limit } => {
            if let Some(c) = cursor {
                p.push(doc! { "$match": { "$or": [
                    { key: { op: &c.key } },
                    { key: &c.key, "id": { op: c.id } },
                ] } });
            }
            p.push(doc! { "$sort": { key: dir, "id": dir } });
            p.push(doc! { "$limit": *limit as i64 });
            *limit
        }
    }
}

fn rows_with_cursor<T>(rows: Vec<(T, Cursor)>, limit: u32) -> Rows<T> {
    let next = if rows.len() as u32 >= limit {
        rows.last().map(|(_, c)| c.clone())
    } else {
        None
    };
    Rows {
        rows: rows.into_iter().map(|(r, _)| r).collect(),
        next,
    }
}

fn mass_check_elem(f: &ReportFilter) -> Document {
    let mut e = Document::new();
    if let Some(r) = day_range(f) {
        e.insert("at", r);
    }
    if let Some(s) = &f.station {
        e.insert("station", s);
    }
    if let Some(o) = &f.operator {
        e.insert("operator", o);
    }
    if let Some(w) = f.within {
        e.insert("within", w);
    }
    e
}

fn mass_check_stages(f: &ReportFilter) -> Vec<Document> {
    unwind_matching("mass_checks", batch_level(f, true), mass_check_elem(f))
}

fn wip_match(f: &ReportFilter) -> Document {
    let mut d = doc! { "status": { "$in": ["created", "in_progress", "flagged", "blocked"] } };
    if let Some(p) = &f.pipeline {
        d.insert("pipeline", p);
    }
    if let Some(s) = &f.station {
        d.insert("current_station", s);
    }
    if let Some(s) = &f.status {
        // Both conditions on `status` must hold.
        d.insert("$and", vec![doc! { "status": s }]);
    }
    d
}

fn stuck_since(f: &ReportFilter, now: OffsetDateTime) -> String {
    let hours = f.stuck_hours.unwrap_or(DEFAULT_STUCK_HOURS);
    ts(now - time::Duration::hours(hours as i64))
}

/// Adds `since`: when the batch arrived at its current station (the open visit), or missing.
fn open_visit() -> Document {
    doc! { "$addFields": { "since": { "$arrayElemAt": [
        { "$filter": { "input": "$visits", "cond": { "$eq": ["$$this.left_at", Bson::Null] } } }, 0
    ] } } }
}

fn visit_stages(f: &ReportFilter) -> Vec<Document> {
    let mut left = doc! { "$ne": Bson::Null };
    if let Some(r) = day_range(f) {
        left.extend(r);
    }
    let mut e = doc! { "left_at": left };
    if let Some(s) = &f.station {
        e.insert("station", s);
    }
    unwind_matching("visits", batch_level(f, true), e)
}

fn exception_stages(f: &ReportFilter) -> Vec<Document> {
    let mut e = Document::new();
    if let Some(r) = day_range(f) {
        e.insert("raised_at", r);
    }
    if let Some(s) = &f.station {
        e.insert("station", s);
    }
    if let Some(o) = &f.operator {
        e.insert("raised_by", o);
    }
    if let Some(k) = &f.kind {
        e.insert("kind", k);
    }
    unwind_matching("exceptions", batch_level(f, false), e)
}

/// Batches of the mass balance with their accepted weighings unwound in weighing order:
/// `acc` is the weighing, `i` its position, `prev` the accepted weighing before it (or null).
fn balance_stages(f: &ReportFilter) -> Vec<Document> {
    let mut m = batch_level(f, true);
    if let Some(r) = day_range(f) {
        m.insert("created_at", r);
    }
    m.insert("mass_checks.accepted", true);
    vec![
        doc! { "$match": m },
        doc! { "$project": {
            "n": 1, "batch_number": 1, "pipeline": 1, "created_at": 1,
            "all": { "$filter": { "input": "$mass_checks", "cond": { "$eq": ["$$this.accepted", true] } } },
        } },
        doc! { "$addFields": { "acc": "$all" } },
        doc! { "$unwind": { "path": "$acc", "includeArrayIndex": "i" } },
        doc! { "$addFields": { "prev": { "$cond": [
            { "$gt": ["$i", 0_i64] },
            { "$arrayElemAt": ["$all", { "$subtract": ["$i", 1_i64] }] },
            Bson::Null,
        ] } } },
    ]
}

fn has_prev() -> Document {
    doc! { "$eq": [{ "$type": "$prev" }, "object"] }
}

impl MongoStore {
    async fn agg(&self, pipeline: Vec<Document>) -> StoreResult<Vec<Document>> {
        self.c
            .batches
            .aggregate(pipeline)
            .allow_disk_use(true)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl ReportStore for MongoStore {
    async fn report_generation(&self) -> StoreResult<u64> {
        let d = self
            .c
            .counters
            .find_one(doc! { "_id": "report_generation" })
            .await
            .map_err(backend)?;
        Ok(match d {
            Some(d) => get_int(&d, "n")? as u64,
            None => 0,
        })
    }

    async fn mass_check_groups(&self, f: &ReportFilter) -> StoreResult<Vec<MassCheckGroup>> {
        let mut p = mass_check_stages(f);
        p.push(doc! { "$group": {
            "_id": { "station": "$mass_checks.station", "operator": "$mass_checks.operator", "within": "$mass_checks.within" },
            "count": { "$sum": 1_i64 },
            "pct_count": { "$sum": { "$cond": [{ "$eq": [{ "$type": "$mass_checks.variance_pct_e4" }, "long"] }, 1_i64, 0_i64] } },
            "sum_pct_e4": { "$sum": "$mass_checks.variance_pct_e4" },
            "sum_abs_pct_e4": { "$sum": { "$abs": "$mass_checks.variance_pct_e4" } },
            "sum_variance_e4": { "$sum": "$mass_checks.variance_e4" },
        } });
        p.push(doc! { "$sort": { "_id.station": 1, "_id.operator": 1, "_id.within": 1 } });
        self.agg(p)
            .await?
            .iter()
            .map(|d| {
                let k = get_doc(d, "_id")?;
                Ok(MassCheckGroup {
                    station: get_str(k, "station")?.to_string(),
                    operator: get_str(k, "operator")?.to_string(),
                    within: get_bool(k, "within")?,
                    count: get_int(d, "count")? as u64,
                    pct_count: get_int(d, "pct_count")? as u64,
                    sum_pct_e4: get_int(d, "sum_pct_e4")?,
                    sum_abs_pct_e4: get_int(d, "sum_abs_pct_e4")?,
                    sum_variance_e4: get_int(d, "sum_variance_e4")?,
                })
            })
            .collect()
    }

    async fn mass_check_rows(
        &self,
        f: &ReportFilter,
        w: Window,
    ) -> StoreResult<Rows<MassCheckRow>> {
        let mut p = mass_check_stages(f);
        p.push(row_id("$mass_checks.seq"));
        p.push(doc! { "$addFields": { "key": "$mass_checks.at" } });
        let limit = window(&mut p, &w, "key", -1);
        let rows = self
            .agg(p)
            .await?
            .iter()
            .map(|d| {
                let m = get_doc(d, "mass_checks")?;
                let row = MassCheckRow {
                    id: get_int(d, "id")?,
                    at: get_time(m, "at")?,
                    batch_id: get_str(d, "_id")?.to_string(),
                    batch_number: get_str(d, "batch_number")?.to_string(),
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    flow_id: get_str(d, "flow_id")?.to_string(),
                    flow_version: get_int(d, "flow_version")? as u32,
                    station: get_str(m, "station")?.to_string(),
                    step: get_str(m, "step")?.to_string(),
                    operator: get_str(m, "operator")?.to_string(),
                    expected: get_str(m, "expected")?.to_string(),
                    expected_unit: get_str(m, "expected_unit")?.to_string(),
                    actual: get_str(m, "actual")?.to_string(),
                    actual_unit: get_str(m, "actual_unit")?.to_string(),
                    variance: get_str(m, "variance")?.to_string(),
                    variance_pct: get_opt_str(m, "variance_pct")?,
                    within: get_bool(m, "within")?,
                    source: get_str(m, "source")?.to_string(),
                    fineness_permille: get_opt_str(m, "fineness_permille")?,
                };
                let key = get_str(m, "at")?.to_string();
                Ok((
                    row,
                    Cursor {
                        key,
                        id: get_int(d, "id")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows_with_cursor(rows, limit))
    }

    async fn wip_groups(
        &self,
        f: &ReportFilter,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<WipGroup>> {
        let since = stuck_since(f, now);
        let p = vec![
            doc! { "$match": wip_match(f) },
            doc! { "$project": { "current_station": 1, "status": 1, "visits": 1 } },
            open_visit(),
            doc! { "$group": {
                "_id": { "station": "$current_station", "status": "$status" },
                "count": { "$sum": 1_i64 },
                "stuck": { "$sum": { "$cond": [
                    { "$lt": [{ "$ifNull": ["$since.entered_at", NEVER] }, &since] }, 1_i64, 0_i64
                ] } },
                "oldest": { "$min": "$since.entered_at" },
            } },
            doc! { "$sort": { "_id.station": 1, "_id.status": 1 } },
        ];
        self.agg(p)
            .await?
            .iter()
            .map(|d| {
                let k = get_doc(d, "_id")?;
                Ok(WipGroup {
                    station: get_opt_str(k, "station")?,
                    status: get_str(k, "status")?.to_string(),
                    count: get_int(d, "count")? as u64,
                    stuck: get_int(d, "stuck")? as u64,
                    oldest_since: get_opt_time(d, "oldest")?,
                })
            })
            .collect()
    }

    async fn wip_rows(
        &self,
        f: &ReportFilter,
        now: OffsetDateTime,
        w: Window,
    ) -> StoreResult<Rows<WipRow>> {
        let since = stuck_since(f, now);
        let mut p = vec![
            doc! { "$match": wip_match(f) },
            doc! { "$project": {
                "n": 1, "batch_number": 1, "pipeline": 1, "flow_id": 1, "flow_version": 1, "status": 1,
                "current_station": 1, "current_step": 1, "created_at": 1, "visits": 1,
            } },
            open_visit(),
            doc! { "$addFields": { "id": "$n", "key": { "$ifNull": ["$since.entered_at", NEVER] } } },
        ];
        let limit = window(&mut p, &w, "key", 1);
        let rows = self
            .agg(p)
            .await?
            .iter()
            .map(|d| {
                let entered = match d.get("since") {
                    Some(Bson::Document(v)) => get_opt_str(v, "entered_at")?,
                    _ => None,
                };
                let row = WipRow {
                    id: get_int(d, "id")?,
                    batch_id: get_str(d, "_id")?.to_string(),
                    batch_number: get_str(d, "batch_number")?.to_string(),
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    flow_id: get_str(d, "flow_id")?.to_string(),
                    flow_version: get_int(d, "flow_version")? as u32,
                    status: get_str(d, "status")?.to_string(),
                    station: get_opt_str(d, "current_station")?,
                    step: get_opt_str(d, "current_step")?,
                    created_at: get_time(d, "created_at")?,
                    at_station_since: entered.as_deref().map(parse_ts).transpose()?,
                    stuck: entered.as_deref().is_some_and(|e| e < since.as_str()),
                };
                let key = get_str(d, "key")?.to_string();
                Ok((
                    row,
                    Cursor {
                        key,
                        id: get_int(d, "id")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows_with_cursor(rows, limit))
    }

    async fn duration_groups(&self, f: &ReportFilter) -> StoreResult<Vec<DurationGroup>> {
        let mut p = visit_stages(f);
        p.push(doc! { "$group": {
            "_id": { "station": "$visits.station", "flow_id": "$flow_id", "flow_version": "$flow_version" },
            "durations": { "$push": "$visits.duration_ms" },
        } });
        p.push(doc! { "$sort": { "_id.station": 1, "_id.flow_id": 1, "_id.flow_version": 1 } });
        self.agg(p)
            .await?
            .iter()
            .map(|d| {
                let k = get_doc(d, "_id")?;
                let mut durations_ms = d
                    .get_array("durations")
                    .map_err(|_| corrupt("durations"))?
                    .iter()
                    .map(|b| match b {
                        Bson::Int64(i) => Ok(*i),
                        Bson::Int32(i) => Ok(*i as i64),
                        other => Err(corrupt(format!("duration {other}"))),
                    })
                    .collect::<StoreResult<Vec<i64>>>()?;
                durations_ms.sort_unstable();
                Ok(DurationGroup {
                    station: get_str(k, "station")?.to_string(),
                    flow_id: get_str(k, "flow_id")?.to_string(),
                    flow_version: get_int(k, "flow_version")? as u32,
                    durations_ms,
                })
            })
            .collect()
    }

    async fn visit_rows(&self, f: &ReportFilter, w: Window) -> StoreResult<Rows<VisitRow>> {
        let mut p = visit_stages(f);
        p.push(row_id("$visits.i"));
        p.push(doc! { "$addFields": { "key": "$visits.left_at" } });
        let limit = window(&mut p, &w, "key", -1);
        let rows = self
            .agg(p)
            .await?
            .iter()
            .map(|d| {
                let v = get_doc(d, "visits")?;
                let row = VisitRow {
                    id: get_int(d, "id")?,
                    batch_id: get_str(d, "_id")?.to_string(),
                    batch_number: get_str(d, "batch_number")?.to_string(),
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    flow_id: get_str(d, "flow_id")?.to_string(),
                    flow_version: get_int(d, "flow_version")? as u32,
                    station: get_str(v, "station")?.to_string(),
                    entered_at: get_time(v, "entered_at")?,
                    left_at: get_time(v, "left_at")?,
                    duration_ms: get_int(v, "duration_ms")?,
                };
                let key = get_str(v, "left_at")?.to_string();
                Ok((
                    row,
                    Cursor {
                        key,
                        id: get_int(d, "id")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows_with_cursor(rows, limit))
    }

    async fn exception_groups(&self, f: &ReportFilter) -> StoreResult<Vec<ExceptionGroup>> {
        let mut p = exception_stages(f);
        p.push(doc! { "$group": {
            "_id": {
                "kind": "$exceptions.kind", "station": "$exceptions.station",
                "decision": "$exceptions.decision", "decided_by": "$exceptions.decided_by",
            },
            "count": { "$sum": 1_i64 },
        } });
        p.push(doc! { "$sort": { "_id.kind": 1, "_id.station": 1, "_id.decision": 1, "_id.decided_by": 1 } });
        self.agg(p)
            .await?
            .iter()
            .map(|d| {
                let k = get_doc(d, "_id")?;
                Ok(ExceptionGroup {
                    kind: get_str(k, "kind")?.to_string(),
                    station: get_str(k, "station")?.to_string(),
                    decision: get_str(k, "decision")?.to_string(),
                    decided_by: get_opt_str(k, "decided_by")?,
                    count: get_int(d, "count")? as u64,
                })
            })
            .collect()
    }

    async fn exception_rows(&self, f: &ReportFilter, w: Window) -> StoreResult<Rows<ExceptionRow>> {
        let mut p = exception_stages(f);
        p.push(row_id("$exceptions.seq"));
        p.push(doc! { "$addFields": { "key": "$exceptions.raised_at" } });
        let limit = window(&mut p, &w, "key", -1);
        let rows = self
            .agg(p)
            .await?
            .iter()
            .map(|d| {
                let e = get_doc(d, "exceptions")?;
                let row = ExceptionRow {
                    id: get_int(d, "id")?,
                    batch_id: get_str(d, "_id")?.to_string(),
                    batch_number: get_str(d, "batch_number")?.to_string(),
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    flow_id: get_str(d, "flow_id")?.to_string(),
                    flow_version: get_int(d, "flow_version")? as u32,
                    seq: get_int(e, "seq")? as u64,
                    kind: get_str(e, "kind")?.to_string(),
                    station: get_str(e, "station")?.to_string(),
                    step: get_str(e, "step")?.to_string(),
                    raised_by: get_str(e, "raised_by")?.to_string(),
                    raised_at: get_time(e, "raised_at")?,
                    reason: get_str(e, "reason")?.to_string(),
                    decision: get_str(e, "decision")?.to_string(),
                    decided_by: get_opt_str(e, "decided_by")?,
                    decided_at: get_opt_time(e, "decided_at")?,
                    decision_reason: get_opt_str(e, "decision_reason")?,
                };
                let key = get_str(e, "raised_at")?.to_string();
                Ok((
                    row,
                    Cursor {
                        key,
                        id: get_int(d, "id")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows_with_cursor(rows, limit))
    }

    async fn balance_groups(
        &self,
        f: &ReportFilter,
    ) -> StoreResult<(BalanceTotals, Vec<BalanceGroup>)> {
        let mut p = balance_stages(f);
        let last = doc! { "$eq": ["$i", { "$subtract": [{ "$size": "$all" }, 1_i64] }] };
        p.push(doc! { "$facet": {
            "groups": [
                { "$group": {
                    "_id": "$acc.station",
                    "weighings": { "$sum": 1_i64 },
                    "transitions": { "$sum": { "$cond": [has_prev(), 1_i64, 0_i64] } },
                    "delta_e4": { "$sum": { "$cond": [has_prev(), { "$subtract": ["$acc.actual_e4", "$prev.actual_e4"] }, 0_i64] } },
                    "previous_e4": { "$sum": { "$cond": [has_prev(), "$prev.actual_e4", 0_i64] } },
                } },
                { "$sort": { "_id": 1 } },
            ],
            "totals": [
                { "$group": {
                    "_id": Bson::Null,
                    "batches": { "$sum": { "$cond": [{ "$eq": ["$i", 0_i64] }, 1_i64, 0_i64] } },
                    "weighings": { "$sum": 1_i64 },
                    "first_e4": { "$sum": { "$cond": [{ "$eq": ["$i", 0_i64] }, "$acc.actual_e4", 0_i64] } },
                    "last_e4": { "$sum": { "$cond": [last, "$acc.actual_e4", 0_i64] } },
                } },
            ],
        } });
        let out = self.agg(p).await?;
        let Some(facets) = out.first() else {
            return Ok((BalanceTotals::default(), Vec::new()));
        };
        let docs = |name: &str| -> StoreResult<Vec<Document>> {
            facets
                .get_array(name)
                .map_err(|_| corrupt(format!("facet {name}")))?
                .iter()
                .map(|b| {
                    b.as_document()
                        .cloned()
                        .ok_or_else(|| corrupt(format!("facet {name} row")))
                })
                .collect()
        };
        let groups = docs("groups")?
            .iter()
            .map(|d| {
                Ok(BalanceGroup {
                    station: get_str(d, "_id")?.to_string(),
                    weighings: get_int(d, "weighings")? as u64,
                    transitions: get_int(d, "transitions")? as u64,
                    delta_e4: get_int(d, "delta_e4")?,
                    previous_e4: get_int(d, "previous_e4")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let totals = match docs("totals")?.first() {
            Some(d) => BalanceTotals {
                batches: get_int(d, "batches")? as u64,
                weighings: get_int(d, "weighings")? as u64,
                first_e4: get_int(d, "first_e4")?,
                last_e4: get_int(d, "last_e4")?,
            },
            None => BalanceTotals::default(),
        };
        Ok((totals, groups))
    }

    async fn balance_rows(&self, f: &ReportFilter, w: Window) -> StoreResult<Rows<BalanceRow>> {
        let mut p = balance_stages(f);
        let sort = doc! { "$sort": { "created_at": 1, "_id": 1, "acc.seq": 1 } };
        let limit = match &w {
            Window::Offset { offset, limit } => {
                p.push(sort);
                if *offset > 0 {
                    p.push(doc! { "$skip": *offset as i64 });
                }
                *limit
            }
            Window::After { cursor, limit } => {
                if let Some(c) = cursor {
                    let (created, batch) = c.key.split_once('|').unwrap_or((c.key.as_str(), ""));
                    p.push(doc! { "$match": { "$or": [
                        { "created_at": { "$gt": created } },
                        { "created_at": created, "_id": { "$gt": batch } },
                        { "created_at": created, "_id": batch, "acc.seq": { "$gt": c.id } },
                    ] } });
                }
                p.push(sort);
                *limit
            }
        };
        p.push(doc! { "$limit": limit as i64 });
        let rows = self
            .agg(p)
            .await?
            .iter()
            .map(|d| {
                let a = get_doc(d, "acc")?;
                let prev = match d.get("prev") {
                    Some(Bson::Document(p)) => Some(p),
                    _ => None,
                };
                let seq = get_int(a, "seq")?;
                let batch_id = get_str(d, "_id")?.to_string();
                let row = BalanceRow {
                    id: get_int(d, "n")? * ROW_ID_BATCH + seq,
                    batch_id: batch_id.clone(),
                    batch_number: get_str(d, "batch_number")?.to_string(),
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    seq: seq as u64,
                    station: get_str(a, "station")?.to_string(),
                    step: get_str(a, "step")?.to_string(),
                    at: get_time(a, "at")?,
                    actual_e4: get_int(a, "actual_e4")?,
                    previous_e4: prev.map(|p| get_int(p, "actual_e4")).transpose()?,
                    previous_station: prev
                        .map(|p| get_str(p, "station").map(str::to_string))
                        .transpose()?,
                    fineness_permille: get_opt_str(a, "fineness_permille")?,
                };
                let key = format!("{}|{batch_id}", get_str(d, "created_at")?);
                Ok((row, Cursor { key, id: seq }))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows_with_cursor(rows, limit))
    }

    async fn weight_list_rows(
        &self,
        f: &ReportFilter,
        w: Window,
    ) -> StoreResult<Rows<WeightListRow>> {
        let mut m = batch_level(f, true);
        m.insert("status", "completed");
        if let Some(r) = day_range(f) {
            m.insert("created_at", r);
        }
        m.insert("mass_checks.accepted", true);
        let accepted = doc! { "$eq": ["$$this.accepted", true] };
        let mut p = vec![
            doc! { "$match": m },
            doc! { "$project": {
                "n": 1, "batch_number": 1, "pipeline": 1, "status": 1, "created_at": 1,
                "m": { "$arrayElemAt": [{ "$filter": { "input": "$mass_checks", "cond": accepted.clone() } }, -1] },
                "f": { "$arrayElemAt": [{ "$filter": { "input": "$mass_checks", "cond": { "$and": [
                    accepted,
                    { "$eq": [{ "$type": "$$this.fineness_permille" }, "string"] },
                ] } } }, -1] },
            } },
            doc! { "$match": { "m": { "$exists": true }, "f": { "$exists": true } } },
            doc! { "$addFields": { "id": "$n", "key": "$created_at" } },
        ];
        let limit = window(&mut p, &w, "key", 1);
        let rows = self
            .agg(p)
            .await?
            .iter()
            .map(|d| {
                let m = get_doc(d, "m")?;
                let fin = get_doc(d, "f")?;
                let row = WeightListRow {
                    id: get_int(d, "id")?,
                    batch_id: get_str(d, "_id")?.to_string(),
                    batch_number: get_str(d, "batch_number")?.to_string(),
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    status: get_str(d, "status")?.to_string(),
                    weighed_at: get_time(m, "at")?,
                    gross_e4: get_int(m, "actual_e4")?,
                    fineness_permille: get_str(fin, "fineness_permille")?.to_string(),
                };
                let key = get_str(d, "key")?.to_string();
                Ok((
                    row,
                    Cursor {
                        key,
                        id: get_int(d, "id")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows_with_cursor(rows, limit))
    }
}
