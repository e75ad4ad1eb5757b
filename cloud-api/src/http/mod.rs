//! The HTTP surface: the JSON API under `/api`, health and metrics, and the middleware every
//! request passes (body limit, security headers, request metrics, tracing).

pub mod audit_log;
pub mod batches;
pub mod devices;
pub mod error;
pub mod extract;
pub mod flows;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod photos;
pub mod reports;
pub mod session;
pub mod users;
pub mod weighing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use metcon_shared::flow::Flow;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

use crate::auth::throttle::LoginThrottle;
use crate::auth::token::TokenKeys;
use crate::config::Config;
use crate::store::Store;
use error::ApiError;

/// Published flow versions by `(flow_id, version)`.
pub type FlowCache = HashMap<(String, u32), Arc<Flow>>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: TokenKeys,
    pub config: Arc<Config>,
    pub throttle: Arc<LoginThrottle>,
    pub metrics: Option<PrometheusHandle>,
    /// Published flow versions never change; batches look theirs up on every command.
    pub flow_cache: Arc<Mutex<FlowCache>>,
    /// Report documents, dropped when new events arrive (see `reports::cache`).
    pub report_cache: Arc<crate::reports::cache::ReportCache>,
    /// Live events for kiosks (weights, devices, arms, batch changes).
    pub hub: Arc<crate::live::Hub>,
    /// Devices as ingest needs them (state, station, keys), cached.
    pub directory: Arc<crate::ingest::registry::Directory>,
    /// Photos, by SHA-256.
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
    /// Signs the local folder's photo URLs.
    pub photo_urls: crate::photos::signed_url::UrlSigner,
    /// Reads scale displays in photos.
    pub ocr: Arc<dyn crate::ocr::DisplayReader>,
    /// The broker side of this replica, when it runs ingest.
    pub broker: Option<Arc<crate::broker::Broker>>,
    /// This replica's MQTT client, for commands and configuration to devices.
    pub mqtt: Option<rumqttc::AsyncClient>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/setup", post(session::setup))
        .route("/auth/login", post(session::login))
        .route("/auth/refresh", post(session::refresh))
        .route("/auth/logout", post(session::logout))
        .route("/auth/me", get(session::me))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", get(users::get).patch(users::update))
        .route("/users/{id}/password", post(users::reset_password))
        .route("/flows", get(flows::list).post(flows::create))
        .route("/flows/validate", post(flows::validate))
        .route(
            "/flows/{flow_id}/versions",
            get(flows::versions).post(flows::new_version),
        )
        .route(
            "/flows/{flow_id}/versions/{version}",
            get(flows::get).put(flows::edit),
        )
        .route(
            "/flows/{flow_id}/versions/{version}/publish",
            post(flows::publish),
        )
        .route(
            "/flows/{flow_id}/versions/{version}/archive",
            post(flows::archive),
        )
        .route("/batches", get(batches::list).post(batches::create))
        .route("/batches/{id}", get(batches::get))
        .route("/batches/{id}/start", post(batches::start))
        .route(
            "/batches/{id}/steps/{step_id}/complete",
            post(batches::complete_step),
        )
        .route(
            "/batches/{id}/steps/{step_id}/mass-check",
            post(batches::mass_check),
        )
        .route(
            "/batches/{id}/steps/{step_id}/photo",
            // Up to twice the limit is read whole, so a client slightly over it gets a
            // clean 413 problem (from the handler) instead of a cut connection.
            post(photos::upload).layer(DefaultBodyLimit::max(
                state.config.photos.max_upload_bytes.saturating_mul(2),
            )),
        )
        .route("/batches/{id}/photos", get(photos::list))
        .route("/photos/{sha256}", get(photos::open))
        .route("/batches/{id}/flags", post(batches::raise_flag))
        .route(
            "/batches/{id}/flags/{flag_id}/approve",
            post(batches::approve_flag),
        )
        .route(
            "/batches/{id}/flags/{flag_id}/reject",
            post(batches::reject_flag),
        )
        .route("/batches/{id}/block", post(batches::block))
        .route("/batches/{id}/unblock", post(batches::unblock))
        .route("/batches/{id}/override", post(batches::override_step))
        .route("/batches/{id}/complete", post(batches::complete))
        .route(
            "/batches/{id}/steps/{step_id}/arm",
            post(weighing::arm).delete(weighing::disarm),
        )
        .route(
            "/batches/{id}/steps/{step_id}/capture",
            post(weighing::capture),
        )
        .route(
            "/batches/{id}/steps/{step_id}/attach-reading",
            post(weighing::attach),
        )
        .route("/stations/{station_id}/events", get(live::station_events))
        .route("/devices", get(devices::list).post(devices::create))
        .route("/devices/{id}", get(devices::get).patch(devices::update))
        .route(
            "/devices/{id}/enrollment-code",
            post(devices::enrollment_code),
        )
        .route("/devices/{id}/revoke", post(devices::revoke))
        .route("/devices/{id}/rotate-key", post(devices::rotate_key))
        .route("/devices/{id}/config", put(devices::push_config))
        .route("/devices/{id}/commands", post(devices::command))
        .route("/devices/{id}/readings", get(devices::readings))
        .route(
            "/devices/{id}/calibrations",
            get(devices::calibrations).post(devices::add_calibration),
        )
        .route("/devices/{id}/keys", get(devices::keys))
        .route("/enroll", post(devices::enroll))
        .route("/approvals", get(batches::approvals))
        .route("/wip", get(batches::wip))
        .route("/audit", get(audit_log::list))
        .route("/audit/verify", get(audit_log::verify))
        .route("/reports", get(reports::catalogue))
        .route("/reports/{name}", get(reports::get))
        .route("/reports/{name}/csv", get(reports::export))
        .route("/reports/{name}/chart.svg", get(reports::chart_svg))
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api", api)
        // The server-rendered web UI (issue 6): pages beside the API, same state.
        .merge(crate::ui::router())
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("there is no such endpoint; see /api/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not accept that method; see /api/openapi.json",
    )
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn track_metrics(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("metcon_http_requests_total", "method" => method.clone(), "path" => path.clone(), "status" => status).increment(1);
    metrics::histogram!("metcon_http_request_duration_seconds", "method" => method, "path" => path)
        .record(start.elapsed().as_secs_f64());
    res
}
