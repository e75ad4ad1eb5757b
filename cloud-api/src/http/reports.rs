//! Analytics endpoints: the report catalogue, each report as JSON (filters echoed, summary,
//! breakdowns, a page of 100 rows, total), its CSV export of every detail row, and its chart.
//!
//! JSON and charts need `ViewAnalytics`, CSV needs `ExportData`. JSON documents are cached
//! for up to 30 s per (report, filters, page) and dropped as soon as a new batch event is
//! stored. CSV is streamed page by page from the store (keyset pagination), so memory stays
//! flat however many rows are exported.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metcon_shared::batch::BatchStatus;
use metcon_shared::role::Permission;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, PathParams, QueryParams};
use super::AppState;
use crate::reports::{
    chart, compute, csv, rows, Cursor, PageEnd, ReportFilter, ReportName, Window,
};
use crate::store::{Store, StoreError, StoreResult};

/// Rows per store round trip while exporting.
const EXPORT_PAGE: u32 = 5000;
const EXCEPTION_KINDS: [&str; 7] = [
    "out_of_tolerance",
    "manual_flag",
    "ocr_mismatch",
    "unreadable_photo",
    "override",
    "blocked",
    "manual_entry",
];

/// Report filters. Each report accepts the ones listed for it in `GET /api/reports`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// First day, inclusive, `YYYY-MM-DD` (UTC).
    pub from: Option<String>,
    /// Last day, inclusive, `YYYY-MM-DD` (UTC).
    pub to: Option<String>,
    /// Metal pipeline, e.g. `gold`.
    pub pipeline: Option<String>,
    pub station: Option<String>,
    /// Operator username.
    pub operator: Option<String>,
    /// Mass checks: `within`, `out` or `all`. WIP: a batch status.
    pub status: Option<String>,
    pub flow_id: Option<String>,
    pub flow_version: Option<u32>,
    /// Exceptions: out_of_tolerance, manual_flag, ocr_mismatch, unreadable_photo, override,
    /// blocked, manual_entry.
    pub kind: Option<String>,
    /// WIP: hours at one station after which a batch counts as stuck (default 24).
    pub stuck_hours: Option<u32>,
    /// 1-based page of 100 rows (JSON only).
    pub page: Option<u32>,
}

fn date(name: &str, v: &Option<String>) -> ApiResult<Option<time::Date>> {
    v.as_deref()
        .map(|s| {
            time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).map_err(
                |_| {
                    ApiError::bad_request(format!(
                        "{name} must be a date like 2026-01-31, not {s:?}"
                    ))
                },
            )
        })
        .transpose()
}

/// Checks the query against the report's filters and turns it into a [`ReportFilter`].
pub fn parse_filter(name: ReportName, q: &ReportQuery) -> ApiResult<ReportFilter> {
    let given: [(&str, bool); 10] = [
        ("from", q.from.is_some()),
        ("to", q.to.is_some()),
        ("pipeline", q.pipeline.is_some()),
        ("station", q.station.is_some()),
        ("operator", q.operator.is_some()),
        ("status", q.status.is_some()),
        ("flow_id", q.flow_id.is_some()),
        ("flow_version", q.flow_version.is_some()),
        ("kind", q.kind.is_some()),
        ("stuck_hours", q.stuck_hours.is_some()),
    ];
    if let Some((bad, _)) = given
        .iter()
        .find(|(k, set)| *set && !name.filters().contains(k))
    {
        return Err(ApiError::bad_request(format!(
            "report {} does not take the filter {bad}; it takes {}",
            name.as_str(),
            name.filters().join(", ")
        )));
    }
    let mut f = ReportFilter {
        from: date("from", &q.from)?,
        to: date("to", &q.to)?,
        pipeline: q.pipeline.clone(),
        station: q.station.clone(),
        operator: q.operator.clone(),
        flow_id: q.flow_id.clone(),
        flow_version: q.flow_version,
        stuck_hours: q.stuck_hours,
        ..ReportFilter::default()
    };
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a > b {
            return Err(ApiError::bad_request("from must not be after to"));
        }
    }
    match (name, q.status.as_deref()) {
        (_, None) | (ReportName::MassChecks, Some("all")) => {}
        (ReportName::MassChecks, Some("within")) => f.within = Some(true),
        (ReportName::MassChecks, Some("out")) => f.within = Some(false),
        (ReportName::MassChecks, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "status must be within, out or all, not {other:?}"
            )))
        }
        (_, Some(s)) => {
            let st: BatchStatus = s.parse().map_err(ApiError::bad_request)?;
            f.status = Some(st.as_str().to_string());
        }
    }
    if let Some(k) = &q.kind {
        if !EXCEPTION_KINDS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "kind must be one of {}",
                EXCEPTION_KINDS.join(", ")
            )));
        }
        f.kind = Some(k.clone());
    }
    Ok(f)
}

fn report_name(name: &str) -> ApiResult<ReportName> {
    name.parse().map_err(ApiError::not_found)
}

/// The report document, from the cache when it is fresh.
async fn document(
    state: &AppState,
    name: ReportName,
    f: &ReportFilter,
    page: u32,
) -> ApiResult<Arc<Value>> {
    // Device health reads the fleet tables, which batch events do not version: always fresh
    // (a few grouped queries over tens to hundreds of devices).
    if name == ReportName::DeviceHealth {
        return Ok(Arc::new(
            compute::report(
                state.store.as_ref(),
                name,
                f,
                OffsetDateTime::now_utc(),
                page,
            )
            .await?,
        ));
    }
    let generation = state.store.report_generation().await?;
    let key = format!("{}|{f:?}|{page}", name.as_str());
    // WIP ages depend on the clock; the 30 s lifetime bounds how old they get.
    if let Some(doc) = state.report_cache.get(&key, generation) {
        return Ok(doc);
    }
    let doc = Arc::new(
        compute::report(
            state.store.as_ref(),
            name,
            f,
            OffsetDateTime::now_utc(),
            page,
        )
        .await?,
    );
    state.report_cache.put(key, generation, doc.clone());
    Ok(doc)
}

/// The reports there are and the filters each takes.
#[utoipa::path(get, path = "/api/reports", tag = "reports", responses((status = 200, body = Object)))]
pub async fn catalogue(caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Permission::ViewAnalytics)?;
    Ok(Json(Value::Array(
        ReportName::ALL
            .iter()
            .map(|r| {
                json!({
                    "name": r.as_str(), "title": r.title(), "filters": r.filters(),
                    "columns": rows::columns(*r),
                    "json": format!("/api/reports/{}", r.as_str()),
                    "csv": format!("/api/reports/{}/csv", r.as_str()),
                    "chart": format!("/api/reports/{}/chart.svg", r.as_str()),
                })
            })
            .collect(),
    )))
}

/// One report: filters echoed, summary, breakdowns, a page of 100 detail rows and the total.
#[utoipa::path(get, path = "/api/reports/{name}", tag = "reports", params(("name" = String, Path, description = "mass-checks, wip, cycle-times, exceptions, mass-balance, weight-list or device-health"), ReportQuery), responses((status = 200, body = Object)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::ViewAnalytics)?;
    let name = report_name(&name)?;
    let f = parse_filter(name, &q)?;
    let doc = document(&state, name, &f, q.page.unwrap_or(1).max(1)).await?;
    Ok(Json(doc.as_ref()).into_response())
}

/// Every detail row of a report as CSV (RFC 4180, UTF-8, formula injection neutralised),
/// streamed.
#[utoipa::path(get, path = "/api/reports/{name}/csv", tag = "reports", params(("name" = String, Path), ReportQuery), responses((status = 200, content_type = "text/csv", body = String)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::ExportData)?;
    let name = report_name(&name)?;
    if q.page.is_some() {
        return Err(ApiError::bad_request(
            "the CSV export has every row; leave out page",
        ));
    }
    let f = parse_filter(name, &q)?;
    let store = state.store.clone();
    let now = OffsetDateTime::now_utc();
    let mut header = String::new();
    csv::push_record(&mut header, rows::columns(name));
    // A producer task reads the next pages while earlier ones are on the wire; the bounded
    // channel and the pages in progress keep at most four pages in memory, and a client that
    // goes away (the body and with it the receiver dropped) stops the producer at its next
    // send.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(header))).await.is_err() {
            return;
        }
        let done = match name {
            ReportName::MassChecks => export_mass_checks(store, f, &tx).await,
            _ => export_pages(store, name, f, now, &tx).await,
        };
        if let Err(e) = done {
            tracing::error!(error = %e, report = name.as_str(), "CSV export failed");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let body = Body::from_stream(chunks);
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.csv\"", name.as_str()))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

type Chunks = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Sends one chunk; `false` once the client has gone.
async fn send(tx: &Chunks, out: String) -> bool {
    out.is_empty() || tx.send(Ok(Bytes::from(out))).await.is_ok()
}

/// Keyset pages through the screen's cells, one after another.
async fn export_pages(
    store: Arc<dyn Store>,
    name: ReportName,
    f: ReportFilter,
    now: OffsetDateTime,
    tx: &Chunks,
) -> StoreResult<()> {
    let mut cursor: Option<Cursor> = None;
    loop {
        let window = Window::After {
            cursor: cursor.take(),
            limit: EXPORT_PAGE,
        };
        let (cells, next) = rows::page(store.as_ref(), name, &f, now, window).await?;
        let mut out = String::with_capacity(cells.len() * 160);
        for r in &cells {
            csv::push_record(&mut out, r);
        }
        if !send(tx, out).await {
            return Ok(());
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Every mass check (the export that reaches millions of rows), written straight from the
/// store's rows. Where the store can find page ends from its index, the pages are delimited
/// ahead and two are read at once (a page is a range, so rows appended meanwhile are neither
/// lost nor repeated); otherwise one keyset page follows the other.
async fn export_mass_checks(
    store: Arc<dyn Store>,
    f: ReportFilter,
    tx: &Chunks,
) -> StoreResult<()> {
    use futures_util::{StreamExt, TryStreamExt};
    let page_bytes = EXPORT_PAGE as usize * 160;
    let first_end = store.mass_check_page_end(&f, None, EXPORT_PAGE).await?;
    if first_end == PageEnd::Unknown {
        let mut cursor: Option<Cursor> = None;
        loop {
            let window = Window::After {
                cursor: cursor.take(),
                limit: EXPORT_PAGE,
            };
            let (out, next) = store
                .mass_check_csv(&f, window, None, csv::CsvWriter::with_capacity(page_bytes))
                .await?;
            if !send(tx, out.into_string()).await {
                return Ok(());
            }
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }
    // (start, end) of each page, found one after the other from the index.
    let ranges =
        futures_util::stream::try_unfold(Some((None::<Cursor>, Some(first_end))), |state| {
            let (store, f) = (store.clone(), f.clone());
            async move {
                let Some((start, known_end)) = state else {
                    return Ok(None);
                };
                let end = match known_end {
                    Some(e) => e,
                    None => {
                        store
                            .mass_check_page_end(&f, start.clone(), EXPORT_PAGE)
                            .await?
                    }
                };
                match end {
                    PageEnd::At(c) => Ok(Some(((start, Some(c.clone())), Some((Some(c), None))))),
                    PageEnd::Last => Ok(Some(((start, None), None))),
                    PageEnd::Unknown => Err(StoreError::Backend(
                        "the store stopped delimiting export pages".into(),
                    )),
                }
            }
        });
    let mut pages = ranges
        .map_ok(|(start, end)| {
            let (store, f) = (store.clone(), f.clone());
            async move {
                // The range bounds the page; no row limit, so that rows recorded in it since
                // it was delimited are in it too.
                let window = Window::After {
                    cursor: start,
                    limit: u32::MAX,
                };
                store
                    .mass_check_csv(&f, window, end, csv::CsvWriter::with_capacity(page_bytes))
                    .await
            }
        })
        .try_buffered(2)
        .boxed();
    while let Some((out, _)) = pages.try_next().await? {
        if !send(tx, out.into_string()).await {
            return Ok(());
        }
    }
    Ok(())
}

/// The report's chart as SVG (drawn server-side with plotters from the report's breakdown).
#[utoipa::path(get, path = "/api/reports/{name}/chart.svg", tag = "reports", params(("name" = String, Path), ReportQuery), responses((status = 200, content_type = "image/svg+xml", body = String)))]
pub async fn chart_svg(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::ViewAnalytics)?;
    let name = report_name(&name)?;
    let f = parse_filter(name, &q)?;
    let doc = document(&state, name, &f, 1).await?;
    let svg = chart::svg(name, &doc).map_err(ApiError::internal)?;
    let mut res = svg.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    Ok(res)
}
