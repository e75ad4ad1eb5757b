//! Analyst pages: the report catalogue and one report with its filters (as a GET form, so a
//! filtered report is a link), summary, a page of detail rows, the SVG chart and the CSV
//! download (both served by the JSON API's endpoints, with the same filters).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use metcon_shared::role::Permission;
use metcon_web::pages::{FilterField, ReportLink, ReportPage, ReportsPage};
use serde_json::Value;

use super::{encode_component, render, UiResult, Viewer};
use crate::http::extract::{PathParams, QueryParams};
use crate::http::reports::{self as api, ReportQuery};
use crate::http::AppState;
use crate::reports::ReportName;

pub async fn catalogue(viewer: Viewer) -> UiResult {
    viewer.require(Permission::ViewAnalytics)?;
    let reports = ReportName::ALL
        .iter()
        .map(|r| ReportLink {
            name: r.as_str().to_string(),
            title: r.title().to_string(),
            description: format!("Filters: {}", r.filters().join(", ")),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ReportsPage {
            layout: viewer.layout("Reports", None),
            reports,
        },
    ))
}

fn label(filter: &str) -> String {
    let mut s = filter.replace('_', " ");
    if let Some(first) = s.get(0..1) {
        s = first.to_uppercase() + &s[1..];
    }
    s
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn report(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(name): PathParams<String>,
    raw: axum::extract::RawQuery,
) -> UiResult {
    viewer.require(Permission::ViewAnalytics)?;
    let report: ReportName = name
        .parse()
        .map_err(|e: String| viewer.fail(crate::http::error::ApiError::not_found(e)))?;
    // Empty fields of the filter form mean "no filter".
    let pairs: Vec<(String, String)> = raw
        .0
        .as_deref()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let query = if pairs.is_empty() {
        String::new()
    } else {
        format!(
            "?{}",
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        )
    };
    let uri: axum::http::Uri = format!("/x{query}")
        .parse()
        .map_err(|_| viewer.fail(crate::http::error::ApiError::bad_request("bad query")))?;
    let q: ReportQuery = axum::extract::Query::try_from_uri(&uri)
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| viewer.fail(crate::http::error::ApiError::bad_request(e.body_text())))?;
    let res: Response = api::get(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(name.clone()),
        QueryParams(q),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let bytes = axum::body::to_bytes(res.into_body(), 16 * 1024 * 1024)
        .await
        .map_err(|e| viewer.fail(crate::http::error::ApiError::internal(e)))?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| viewer.fail(crate::http::error::ApiError::internal(e)))?;
    let columns: Vec<String> = doc["columns"]
        .as_array()
        .map(|c| c.iter().map(cell).collect())
        .unwrap_or_default();
    let rows = doc["rows"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| columns.iter().map(|c| cell(&r[c.as_str()])).collect())
                .collect()
        })
        .unwrap_or_default();
    let summary = doc["summary"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (label(k), cell(v))).collect())
        .unwrap_or_default();
    let given = |f: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == f)
            .map(|(_, v)| v.replace('+', " "))
            .unwrap_or_default()
    };
    let filters = report
        .filters()
        .iter()
        .map(|f| FilterField {
            name: f.to_string(),
            label: label(f),
            value: given(f),
            input: if *f == "from" || *f == "to" {
                "date".into()
            } else {
                "text".into()
            },
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ReportPage {
            layout: viewer.layout(report.title(), None),
            name: encode_component(report.as_str()),
            title: report.title().to_string(),
            filters,
            summary,
            columns,
            rows,
            total: doc["total"].as_u64().unwrap_or(0),
            query,
            can_export: viewer.can(Permission::ExportData),
        },
    ))
}
