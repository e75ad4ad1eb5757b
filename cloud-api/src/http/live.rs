//! Server-Sent Events for the kiosk: a station's live weight and stable state, its device's
//! presence, armed and bound mass-check steps, and its batches' changes.
//!
//! A stream opens with what the hub remembers (the last weight, the device state), then
//! follows the hub. If a slow client falls behind, it is told to `resync` (reload what it
//! shows) instead of silently missing events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use metcon_shared::role::Permission;
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, PathParams};
use super::AppState;
use crate::live::LiveEvent;

fn event(e: &LiveEvent) -> Event {
    Event::default()
        .event(e.name())
        .json_data(e)
        .unwrap_or_else(|_| Event::default().event("error").data("unserializable event"))
}

/// The live event stream of a station (text/event-stream).
#[utoipa::path(get, path = "/api/stations/{station_id}/events", tag = "live", responses((status = 200, content_type = "text/event-stream", body = String)))]
pub async fn station_events(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(station): PathParams<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if !caller.user.role.allows(Permission::ViewDevices) {
        caller.require(Permission::ExecuteSteps)?;
        if !caller.actor().may_operate_at(&station) {
            return Err(ApiError::forbidden(format!(
                "station {station} is not one of yours"
            )));
        }
    }
    let rx = state.hub.subscribe();
    let first: Vec<Result<Event, Infallible>> = state
        .hub
        .snapshot(&station)
        .iter()
        .map(|e| Ok(event(e)))
        .collect();
    let follow = stream::unfold((rx, station), |(mut rx, station)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.concerns(&station) => return Some((Ok(event(&e)), (rx, station))),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let ev = Event::default()
                        .event("resync")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(ev), (rx, station)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream::iter(first).chain(follow))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
