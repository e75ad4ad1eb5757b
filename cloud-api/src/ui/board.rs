//! The operator's station board (the batches waiting at my stations: status, priority, age,
//! step) and starting a batch.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use metcon_shared::batch::Priority;
use metcon_shared::flow::FlowStatus;
use metcon_shared::role::{Permission, Role};
use metcon_web::pages::{BatchRow, BoardPage, FlowOption, Notice, StationBoard};
use time::OffsetDateTime;

use super::{format, problem, render, Form, UiResult, Viewer};
use crate::http::batches::{self as api, BatchSummary, CreateBatch, ListQuery};
use crate::http::extract::{Body, QueryParams};
use crate::http::AppState;

/// Unfinished batches, grouped by the station they wait at. Operators see their stations
/// (the API's scope); others see every station with work.
async fn stations(state: &AppState, viewer: &Viewer) -> UiResult<Vec<StationBoard>> {
    let mut by_station: BTreeMap<String, Vec<BatchSummary>> = BTreeMap::new();
    for st in &viewer.caller.user.stations {
        by_station.entry(st.clone()).or_default();
    }
    for status in ["created", "in_progress", "flagged", "blocked"] {
        let mut page = 1;
        loop {
            let axum::Json(p) = api::list(
                State(state.clone()),
                viewer.caller.clone(),
                QueryParams(ListQuery {
                    status: Some(status.into()),
                    page: Some(page),
                    ..ListQuery::default()
                }),
            )
            .await
            .map_err(|e| viewer.fail(e))?;
            let n = p.items.len();
            for b in p.items {
                let st = b.current_station.clone().unwrap_or_else(|| "—".into());
                by_station.entry(st).or_default().push(b);
            }
            if n == 0 || (page as u64) * (p.per_page as u64) >= p.total || page >= 20 {
                break;
            }
            page += 1;
        }
    }
    let now = OffsetDateTime::now_utc();
    Ok(by_station
        .into_iter()
        .map(|(station_id, mut batches)| {
            // High priority first, then oldest first.
            batches.sort_by(|a, b| {
                (b.priority == "high")
                    .cmp(&(a.priority == "high"))
                    .then(a.created_at.cmp(&b.created_at))
            });
            StationBoard {
                station_id,
                batches: batches
                    .into_iter()
                    .map(|b| BatchRow {
                        id: b.id.to_string(),
                        number: b.batch_number,
                        flow: format!("{} v{}", b.flow_id, b.flow_version),
                        high: b.priority == "high",
                        priority: b.priority,
                        status: b.status,
                        age: format::age(b.created_at, now),
                        step: b.current_step.unwrap_or_default(),
                    })
                    .collect(),
            }
        })
        .collect())
}

async fn board_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ViewBatches)?;
    let stations = stations(state, viewer).await?;
    let can_start = viewer.can(Permission::CreateBatches);
    let mut flows = Vec::new();
    if can_start {
        for f in state
            .store
            .list_flows()
            .await
            .map_err(|e| viewer.fail(e.into()))?
        {
            if f.status == FlowStatus::Active {
                flows.push(FlowOption {
                    label: format!("{} (v{})", f.content.name, f.version),
                    flow_id: f.flow_id,
                });
            }
        }
    }
    Ok(render(
        status,
        &BoardPage {
            layout: viewer.layout("Station board", notice),
            stations,
            can_start: can_start && !flows.is_empty(),
            flows,
        },
    ))
}

pub async fn board(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    if viewer.caller.user.role == Role::Analyst {
        // Analysts do not run batches; their start page is the reports.
        return Ok(Redirect::to("/reports").into_response());
    }
    board_page(&state, &viewer, StatusCode::OK, None).await
}

pub async fn create_batch(State(state): State<AppState>, viewer: Viewer, form: Form) -> UiResult {
    let flow_id = form.get("flow_id").unwrap_or("").to_string();
    let priority = match form.get("priority") {
        Some("high") => Priority::High,
        _ => Priority::Normal,
    };
    let created = api::create(
        State(state.clone()),
        viewer.caller.clone(),
        Body(CreateBatch { flow_id, priority }),
    )
    .await;
    let id = match created {
        Ok((_, axum::Json(v))) => v.batch.batch_id,
        Err(e) => return board_page(&state, &viewer, e.status, Some(problem(&e))).await,
    };
    // A batch is started as it is created: the operator is at the first station.
    let started = api::start(
        State(state.clone()),
        viewer.caller.clone(),
        crate::http::extract::PathParams(id),
        None,
    )
    .await;
    if let Err(e) = started {
        return board_page(&state, &viewer, e.status, Some(problem(&e))).await;
    }
    Ok(Redirect::to(&format!("/batches/{id}")).into_response())
}
