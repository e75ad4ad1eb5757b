//! The device fleet: registry, one-time enrollment codes and enrollment, revocation, key
//! rotation, pushed configuration, commands, fleet status, readings and scale calibration.
//!
//! Admins manage devices; supervisors and admins see the fleet; operators see the readings of
//! their stations' devices (to attach one by hand). Enrollment itself (`POST /api/enroll`) is
//! called by the device with its one-time code: no user token, throttled per address, and
//! every outcome is audited.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use metcon_shared::calibration::{self, CalibrationKind, CalibrationOutcome, CalibrationRecord};
use metcon_shared::device::{CameraSettings, EnrollRequest, EnrollResponse, Region, ScaleSettings};
use metcon_shared::role::Permission;
use metcon_shared::topic::{Channel, DeviceCommand, DeviceConfig, DeviceId, Presence, Topic};
use rand::Rng;
use rumqttc::QoS;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, ClientInfo, PathParams, QueryParams};
use super::session::audit;
use super::AppState;
use crate::auth::token::token_hash;
use crate::store::devices::{
    Device, DeviceCounts, DeviceKeyRecord, DeviceState, EnrollRefusal, Enrollment, EnrollmentCode,
    StoredReading,
};

/// A device as the API shows it: never its broker secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub device_id: String,
    pub name: String,
    pub site: String,
    pub station_id: String,
    #[schema(value_type = Object)]
    pub scale: ScaleSettings,
    #[schema(value_type = Object)]
    pub camera: CameraSettings,
    #[schema(value_type = Option<Object>)]
    pub camera_region: Option<Region>,
    #[schema(value_type = Object)]
    pub config: DeviceConfig,
    pub state: String,
    pub hostname: Option<String>,
    pub agent_version: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub enrolled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    /// Online/offline from the status topic and the broker will.
    pub online: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<OffsetDateTime>,
    pub outbox_depth: Option<u64>,
    pub outbox_full: bool,
    pub scale_connected: bool,
    /// Our clock minus the device's, from its last status, in milliseconds.
    pub clock_skew_ms: Option<i64>,
    pub readings: u64,
    pub unbound_readings: u64,
    pub last_seq: Option<u64>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_reading_at: Option<OffsetDateTime>,
    /// `null` when the scale may decide mass checks, else why not.
    pub calibration_problem: Option<String>,
}

async fn view(state: &AppState, d: Device, counts: Option<&DeviceCounts>) -> ApiResult<DeviceView> {
    let seen = state.hub.seen(d.id.as_str());
    let presence = match &seen {
        Some(s) => Some((s.status.clone(), s.received_at)),
        None => state
            .store
            .presences()
            .await?
            .into_iter()
            .find(|p| p.device_id == d.id.as_str())
            .map(|p| (p.status, p.received_at)),
    };
    let records = state.store.calibrations(d.id.as_str()).await?;
    let calibration_problem = calibration::fitness(&records, OffsetDateTime::now_utc(), None)
        .err()
        .map(|e| e.to_string());
    let skew = presence
        .as_ref()
        .and_then(|(s, at)| s.device_time.map(|t| (*at - t).whole_milliseconds() as i64));
    let online = presence
        .as_ref()
        .is_some_and(|(s, _)| s.presence == Presence::Online)
        && d.state == DeviceState::Active;
    Ok(DeviceView {
        device_id: d.id.to_string(),
        name: d.name,
        site: d.site,
        station_id: d.station_id,
        scale: d.scale,
        camera: d.camera,
        camera_region: d.camera_region,
        config: d.config,
        state: d.state.as_str().to_string(),
        hostname: d.hostname,
        agent_version: presence
            .as_ref()
            .and_then(|(s, _)| s.agent_version.clone())
            .or(d.agent_version),
        created_at: d.created_at,
        enrolled_at: d.enrolled_at,
        revoked_at: d.revoked_at,
        revoked_reason: d.revoked_reason,
        online,
        last_seen: presence.as_ref().map(|(_, at)| *at),
        outbox_depth: presence.as_ref().map(|(s, _)| s.outbox_depth),
        outbox_full: presence.as_ref().is_some_and(|(s, _)| s.outbox_full),
        scale_connected: presence.as_ref().is_some_and(|(s, _)| s.scale_connected),
        clock_skew_ms: skew,
        readings: counts.map_or(0, |c| c.readings),
        unbound_readings: counts.map_or(0, |c| c.unbound),
        last_seq: counts.and_then(|c| c.last_seq),
        last_reading_at: counts.and_then(|c| c.last_reading_at),
        calibration_problem,
    })
}

async fn load(state: &AppState, id: &str) -> ApiResult<Device> {
    state
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id} does not exist")))
}

/// The fleet: every device with its status.
#[utoipa::path(get, path = "/api/devices", tag = "devices", responses((status = 200, body = Vec<DeviceView>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<DeviceView>>> {
    caller.require(Permission::ViewDevices)?;
    let counts = state.store.device_counts().await?;
    let mut out = Vec::new();
    for d in state.store.list_devices().await? {
        let c = counts.iter().find(|c| c.device_id == d.id.as_str());
        out.push(view(&state, d, c).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/devices/{id}", tag = "devices", responses((status = 200, body = DeviceView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<DeviceView>> {
    caller.require(Permission::ViewDevices)?;
    let d = load(&state, &id).await?;
    let counts = state.store.device_counts().await?;
    let c = counts.iter().find(|c| c.device_id == id);
    Ok(Json(view(&state, d, c).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    /// a-z, 0-9, `-`, `_`; also the topic segment and the broker username.
    pub device_id: String,
    pub name: String,
    pub site: String,
    pub station_id: String,
    #[schema(value_type = Object)]
    pub scale: ScaleSettings,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub camera: CameraSettings,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub camera_region: Option<Region>,
}

fn check_settings(
    name: &str,
    site: &str,
    station: &str,
    scale: &ScaleSettings,
    camera: &CameraSettings,
) -> ApiResult<()> {
    let mut problems: Vec<(String, String)> = Vec::new();
    if name.trim().is_empty() || name.len() > 200 {
        problems.push(("name".into(), "give a name of 1–200 characters".into()));
    }
    if site.trim().is_empty() || site.len() > 200 {
        problems.push(("site".into(), "give a site of 1–200 characters".into()));
    }
    if !metcon_shared::flow::is_slug(station) {
        problems.push((
            "station_id".into(),
            "a station id uses a-z, 0-9, - and _".into(),
        ));
    }
    problems.extend(scale.problems());
    problems.extend(camera.problems());
    if problems.is_empty() {
        return Ok(());
    }
    let detail = problems
        .iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError::unprocessable(detail).with_extra(json!({
        "problems": problems.iter().map(|(p, m)| json!({ "path": p, "message": m })).collect::<Vec<_>>()
    })))
}

/// Register a device; it enrolls later with a one-time code.
#[utoipa::path(post, path = "/api/devices", tag = "devices", request_body = CreateDevice, responses((status = 201, body = DeviceView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateDevice>,
) -> ApiResult<(StatusCode, Json<DeviceView>)> {
    caller.require(Permission::ManageDevices)?;
    let id = DeviceId::parse(&req.device_id).map_err(|e| {
        ApiError::unprocessable(format!("device_id: {e}"))
            .with_extra(json!({ "problems": [{ "path": "device_id", "message": e.to_string() }] }))
    })?;
    check_settings(
        &req.name,
        &req.site,
        &req.station_id,
        &req.scale,
        &req.camera,
    )?;
    let now = OffsetDateTime::now_utc();
    let d = Device {
        id: id.clone(),
        name: req.name.trim().to_string(),
        site: req.site.trim().to_string(),
        station_id: req.station_id,
        scale: req.scale,
        camera: req.camera,
        camera_region: req.camera_region,
        config: DeviceConfig::default(),
        state: DeviceState::Pending,
        broker_secret_hash: None,
        hostname: None,
        agent_version: None,
        created_at: now,
        created_by: caller.user.username.clone(),
        enrolled_at: None,
        revoked_at: None,
        revoked_reason: None,
        updated_at: now,
    };
    let a = audit(
        &caller.user.username,
        "device_created",
        format!("device:{id}"),
        json!({ "station_id": d.station_id, "site": d.site, "protocol": d.scale.protocol }),
        caller.ip.clone(),
    );
    state.store.create_device(&d, &[a]).await?;
    Ok((StatusCode::CREATED, Json(view(&state, d, None).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    pub name: Option<String>,
    pub site: Option<String>,
    pub station_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub scale: Option<ScaleSettings>,
    #[schema(value_type = Option<Object>)]
    pub camera: Option<CameraSettings>,
    /// The display region in the camera's frames; `null` clears it.
    #[serde(default, with = "serde_with_none")]
    #[schema(value_type = Option<Object>)]
    pub camera_region: Option<Option<Region>>,
}

/// `Option<Option<T>>` that tells "absent" from `null`.
mod serde_with_none {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Change a device's name, site, station, scale or camera settings, or its display region.
#[utoipa::path(patch, path = "/api/devices/{id}", tag = "devices", request_body = UpdateDevice, responses((status = 200, body = DeviceView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(req): Body<UpdateDevice>,
) -> ApiResult<Json<DeviceView>> {
    caller.require(Permission::ManageDevices)?;
    let mut d = load(&state, &id).await?;
    let read_at = d.updated_at;
    if d.state == DeviceState::Revoked {
        return Err(ApiError::conflict(format!(
            "device {id} is revoked; register a new one"
        )));
    }
    let before = json!({ "station_id": d.station_id, "scale": d.scale, "camera": d.camera, "camera_region": d.camera_region });
    if let Some(n) = req.name {
        d.name = n.trim().to_string();
    }
    if let Some(s) = req.site {
        d.site = s.trim().to_string();
    }
    if let Some(s) = req.station_id {
        d.station_id = s;
    }
    if let Some(s) = req.scale {
        d.scale = s;
    }
    if let Some(c) = req.camera {
        d.camera = c;
    }
    let region_changed = req.camera_region.is_some();
    if let Some(r) = req.camera_region {
        d.camera_region = r;
    }
    check_settings(&d.name, &d.site, &d.station_id, &d.scale, &d.camera)?;
    if let Some(r) = d.camera_region.filter(|_| region_changed) {
        check_region(&state, &id, &r).await?;
    }
    d.updated_at = OffsetDateTime::now_utc();
    let a = audit(
        &caller.user.username,
        "device_updated",
        format!("device:{id}"),
        json!({ "before": before, "after": { "station_id": d.station_id, "scale": d.scale, "camera": d.camera, "camera_region": d.camera_region } }),
        caller.ip.clone(),
    );
    state.store.update_device(&d, read_at, &[a]).await?;
    state.directory.invalidate(&id);
    state.hub.device_changed(&id);
    let counts = state.store.device_counts().await?;
    let c = counts.iter().find(|c| c.device_id == id);
    Ok(Json(view(&state, d, c).await?))
}

/// A new display region must have an area and, once the device has sent a frame, lie inside
/// its latest frame.
async fn check_region(state: &AppState, id: &str, r: &Region) -> ApiResult<()> {
    let frame = newest_frame(state, id)
        .await?
        .map(|f| (f.photo.width, f.photo.height));
    let problems = r.problems(frame);
    if problems.is_empty() {
        return Ok(());
    }
    Err(
        ApiError::unprocessable(format!("camera_region: {}", problems.join("; "))).with_extra(
            json!({ "problems": problems.iter().map(|m| json!({ "path": "camera_region", "message": m })).collect::<Vec<_>>() }),
        ),
    )
}

/// A device's newest camera frame, the one the display region is drawn on.
#[derive(Debug, Clone)]
pub struct LatestFrame {
    pub photo: crate::store::photos::PhotoRecord,
    /// Kept as a mass check's evidence (a stored record, named by `photo.id`); otherwise it
    /// came with a reading that bound to nothing (an admin's capture while setting up the
    /// camera) and the record is made up from its bytes, never stored.
    pub kept: bool,
}

/// How many of a device's newest readings are searched for a frame newer than the kept one.
const FRAME_SEARCH: u32 = 20;

/// The newest frame among the kept ones and those of the device's latest readings: a camera
/// being set up has sent frames before any mass check kept one.
async fn newest_frame(state: &AppState, id: &str) -> ApiResult<Option<LatestFrame>> {
    use crate::store::photos::PhotoSource;
    let kept = state.store.latest_device_photo(id).await?;
    for r in state.store.list_readings(id, false, FRAME_SEARCH).await? {
        let Some(sha) = r.reading.frame_sha256 else {
            continue;
        };
        let sha = sha.to_string();
        if let Some(k) = kept.as_ref().filter(|k| k.sha256 == sha) {
            return Ok(Some(LatestFrame {
                photo: k.clone(),
                kept: true,
            }));
        }
        // Not arrived (yet), or not an image: an older frame will do.
        let Some(bytes) = state.blobs.get(&sha).await.map_err(ApiError::internal)? else {
            continue;
        };
        let max = state.config.broker.max_photo_bytes;
        let parsed =
            tokio::task::spawn_blocking(move || crate::photos::Image::parse(bytes.into(), max))
                .await
                .map_err(ApiError::internal)?;
        let Ok(image) = parsed else {
            continue;
        };
        let source = PhotoSource::Device {
            device_id: id.to_string(),
            seq: r.reading.seq,
        };
        return Ok(Some(LatestFrame {
            photo: image.unbound(source, r.received_at),
            kept: false,
        }));
    }
    Ok(kept.map(|photo| LatestFrame { photo, kept: true }))
}

/// The device's newest camera frame, for those who may change the region.
pub async fn latest_frame(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<Option<LatestFrame>> {
    caller.require(Permission::ManageDevices)?;
    let _ = load(state, id).await?;
    newest_frame(state, id).await
}

/// One kept frame of the device, by photo id (`None` if that photo is not a frame of this
/// device), for those who may change the region.
pub async fn frame_photo(
    state: &AppState,
    caller: &Caller,
    id: &str,
    photo: uuid::Uuid,
) -> ApiResult<Option<crate::store::photos::PhotoRecord>> {
    caller.require(Permission::ManageDevices)?;
    let _ = load(state, id).await?;
    Ok(state.store.photo(photo).await?.filter(|p| {
        matches!(&p.source, crate::store::photos::PhotoSource::Device { device_id, .. } if device_id == id)
    }))
}

/// The URL boxes enroll against: the configured public URL, else the listen address.
pub fn server_url(state: &AppState) -> String {
    state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.listen))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentCodeView {
    /// Shown once: give it to whoever sets up the box.
    pub code: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The command to run on the box.
    pub command: String,
}

/// Crockford base32 without I, L, O, U: easy to read aloud and type.
const CODE_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub(crate) fn new_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..16)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Codes are compared without dashes, spaces or case.
pub(crate) fn code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    token_hash(&normal)
}

/// A one-time enrollment code for a device that has not enrolled yet. Earlier codes of the
/// device stop working.
#[utoipa::path(post, path = "/api/devices/{id}/enrollment-code", tag = "devices", responses((status = 201, body = EnrollmentCodeView)))]
pub async fn enrollment_code(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<(StatusCode, Json<EnrollmentCodeView>)> {
    caller.require(Permission::ManageDevices)?;
    let d = load(&state, &id).await?;
    if d.state != DeviceState::Pending {
        return Err(ApiError::conflict(format!(
            "device {id} is {}; only a device that has not enrolled gets a code (register a new device to replace a box)",
            d.state.as_str()
        )));
    }
    let now = OffsetDateTime::now_utc();
    let code = new_code();
    let expires_at = now + time::Duration::hours(state.config.ingest.enrollment_code_hours);
    let a = audit(
        &caller.user.username,
        "enrollment_code_created",
        format!("device:{id}"),
        json!({ "expires_at": expires_at.to_string() }),
        caller.ip.clone(),
    );
    state
        .store
        .create_enrollment_code(
            &EnrollmentCode {
                code_hash: code_hash(&code),
                device_id: id.clone(),
                created_by: caller.user.username.clone(),
                created_at: now,
                expires_at,
            },
            &[a],
        )
        .await?;
    let server = server_url(&state);
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentCodeView {
            command: format!("metcon-edge enroll --server {server} --code {code}"),
            code,
            expires_at,
        }),
    ))
}

/// Called by the device: trade a one-time code and a public key for a device id, broker
/// credentials and settings.
#[utoipa::path(post, path = "/api/enroll", tag = "devices", request_body = Object, responses((status = 200, body = Object)), security(()))]
pub async fn enroll(
    State(state): State<AppState>,
    client: ClientInfo,
    Body(req): Body<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    let keys: Vec<String> = client
        .ip
        .iter()
        .map(|ip| format!("enroll-ip:{ip}"))
        .collect();
    if let Err(wait) = state.throttle.check(&keys, Instant::now()) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            format!(
                "too many failed enrollments; try again in {} seconds",
                wait.as_secs().max(1)
            ),
        );
        e.retry_after_secs = Some(wait.as_secs().max(1));
        return Err(e);
    }
    let broker = state.broker.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server does not run ingest; enroll against one that does",
        )
    })?;
    let hash = code_hash(&req.code);
    let refused = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "enrollment-refused",
            format!("the enrollment code is not valid ({why}); ask an admin for a new one"),
        )
    };
    let now = OffsetDateTime::now_utc();
    let password = crate::auth::token::random_token();
    let enrollment = Enrollment {
        public_key: req.public_key,
        broker_secret_hash: crate::broker::gate::secret_hash(&password),
        agent_version: req.agent_version.chars().take(64).collect(),
        hostname: req.hostname.map(|h| h.chars().take(255).collect()),
        at: now,
    };
    // The store names the device in `target` once it knows which one the code is for.
    let ok_audit = vec![audit(
        "device",
        "device_enrolled",
        String::new(),
        json!({ "public_key": req.public_key.to_string(), "agent_version": enrollment.agent_version, "hostname": enrollment.hostname }),
        client.ip.clone(),
    )];
    let outcome = state
        .store
        .consume_enrollment_code(&hash, &enrollment, &ok_audit)
        .await?;
    let device = match outcome {
        Ok(d) => d,
        Err(why) => {
            state.throttle.failure(&keys, Instant::now());
            let reason = match why {
                EnrollRefusal::Unknown => "unknown code",
                EnrollRefusal::Expired => "expired code",
                EnrollRefusal::Used => "code already used",
                EnrollRefusal::DeviceNotPending => "device already enrolled or revoked",
            };
            state
                .store
                .append_audit(&audit(
                    "anonymous",
                    "enrollment_refused",
                    "enrollment".into(),
                    json!({ "reason": reason }),
                    client.ip.clone(),
                ))
                .await?;
            return Err(refused(reason));
        }
    };
    if let Err(e) = broker.access.grant(&device.id, &password).await {
        tracing::error!(device = %device.id, error = %format!("{e:#}"), "broker login not created");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker-unavailable",
            format!("device {} is enrolled but its broker login could not be created ({e}); revoke it and register the box again", device.id),
        ));
    }
    state.directory.invalidate(device.id.as_str());
    state.hub.device_changed(device.id.as_str());
    if device.config != DeviceConfig::default() {
        publish_config(&state, &device).await;
    }
    Ok(Json(EnrollResponse {
        device_id: device.id.clone(),
        site: device.site,
        station_id: device.station_id,
        broker: broker.endpoint.clone(),
        username: device.id.to_string(),
        password,
        scale: device.scale,
        camera: device.camera,
        camera_region: device.camera_region,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub reason: String,
}

/// Revoke a device: its broker access ends now and its signatures are refused from now on.
#[utoipa::path(post, path = "/api/devices/{id}/revoke", tag = "devices", request_body = RevokeRequest, responses((status = 200, body = DeviceView)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(req): Body<RevokeRequest>,
) -> ApiResult<Json<DeviceView>> {
    caller.require(Permission::ManageDevices)?;
    let reason = req.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::unprocessable(
            "a reason is required to revoke a device",
        ));
    }
    let mut d = load(&state, &id).await?;
    let read_at = d.updated_at;
    if d.state == DeviceState::Revoked {
        return Err(ApiError::conflict(format!(
            "device {id} is already revoked"
        )));
    }
    let now = OffsetDateTime::now_utc();
    d.state = DeviceState::Revoked;
    d.revoked_at = Some(now);
    d.revoked_reason = Some(reason.clone());
    d.updated_at = now;
    let a = audit(
        &caller.user.username,
        "device_revoked",
        format!("device:{id}"),
        json!({ "reason": reason }),
        caller.ip.clone(),
    );
    state.store.update_device(&d, read_at, &[a]).await?;
    state.directory.invalidate(&id);
    state.hub.device_changed(&id);
    if let Some(b) = &state.broker {
        if let Err(e) = b.access.revoke(&d.id).await {
            tracing::error!(device = %id, error = %format!("{e:#}"), "broker login not disabled; signatures are refused anyway");
        }
    }
    Ok(Json(view(&state, d, None).await?))
}

async fn send_command(state: &AppState, device: &DeviceId, cmd: &DeviceCommand) -> ApiResult<()> {
    let client = state.mqtt.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server is not connected to the broker",
        )
    })?;
    let body = serde_json::to_vec(cmd).map_err(ApiError::internal)?;
    client
        .publish(
            Topic::new(device.clone(), Channel::Cmd).to_string(),
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the command could not be queued: {e}"),
            )
        })
}

async fn publish_config(state: &AppState, d: &Device) {
    if let (Some(client), Ok(body)) = (&state.mqtt, serde_json::to_vec(&d.config)) {
        let _ = client
            .publish(
                Topic::new(d.id.clone(), Channel::Config).to_string(),
                QoS::AtLeastOnce,
                true,
                body,
            )
            .await;
    }
}

/// Ask the device to rotate its key; the new key arrives signed by the old one.
#[utoipa::path(post, path = "/api/devices/{id}/rotate-key", tag = "devices", responses((status = 202, body = Object)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.require(Permission::ManageDevices)?;
    let d = load(&state, &id).await?;
    if d.state != DeviceState::Active {
        return Err(ApiError::conflict(format!(
            "device {id} is {}",
            d.state.as_str()
        )));
    }
    send_command(&state, &d.id, &DeviceCommand::RotateKey).await?;
    state
        .store
        .append_audit(&audit(
            &caller.user.username,
            "device_key_rotation_requested",
            format!("device:{id}"),
            json!({}),
            caller.ip.clone(),
        ))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requested": "rotate_key" })),
    ))
}

/// Push configuration on the device's retained `config` topic.
#[utoipa::path(put, path = "/api/devices/{id}/config", tag = "devices", request_body = Object, responses((status = 200, body = DeviceView)))]
pub async fn push_config(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(config): Body<DeviceConfig>,
) -> ApiResult<Json<DeviceView>> {
    caller.require(Permission::ManageDevices)?;
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems.join("; ")));
    }
    let mut d = load(&state, &id).await?;
    let read_at = d.updated_at;
    if d.state == DeviceState::Revoked {
        return Err(ApiError::conflict(format!("device {id} is revoked")));
    }
    d.config = config;
    d.updated_at = OffsetDateTime::now_utc();
    let a = audit(
        &caller.user.username,
        "device_config_pushed",
        format!("device:{id}"),
        json!({ "config": d.config }),
        caller.ip.clone(),
    );
    state.store.update_device(&d, read_at, &[a]).await?;
    publish_config(&state, &d).await;
    Ok(Json(view(&state, d, None).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// `capture`, `tare` or `zero`.
    pub cmd: String,
}

/// Send the device a command: capture (the next stable reading), tare or zero.
#[utoipa::path(post, path = "/api/devices/{id}/commands", tag = "devices", request_body = CommandRequest, responses((status = 202, body = Object)))]
pub async fn command(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(req): Body<CommandRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.require(Permission::ManageDevices)?;
    let cmd = match req.cmd.as_str() {
        "capture" => DeviceCommand::Capture {
            request_id: Some(format!("admin-{}", uuid::Uuid::new_v4().simple())),
        },
        "tare" => DeviceCommand::Tare,
        "zero" => DeviceCommand::Zero,
        other => {
            return Err(ApiError::unprocessable(format!(
                "unknown command {other:?}; use capture, tare or zero"
            )))
        }
    };
    let d = load(&state, &id).await?;
    if d.state != DeviceState::Active {
        return Err(ApiError::conflict(format!(
            "device {id} is {}",
            d.state.as_str()
        )));
    }
    send_command(&state, &d.id, &cmd).await?;
    state
        .store
        .append_audit(&audit(
            &caller.user.username,
            "device_command_sent",
            format!("device:{id}"),
            json!({ "command": cmd }),
            caller.ip.clone(),
        ))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "sent": cmd }))))
}

/// Used by kiosks too: the capture command for an armed step.
pub async fn capture(state: &AppState, device: &DeviceId, request_id: &str) -> ApiResult<()> {
    send_command(
        state,
        device,
        &DeviceCommand::Capture {
            request_id: Some(request_id.to_string()),
        },
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadingsQuery {
    /// Only readings not bound to a step.
    pub unbound: Option<bool>,
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<u32>,
}

/// A device's signed readings, newest first; operators see those of their stations' devices.
#[utoipa::path(get, path = "/api/devices/{id}/readings", tag = "devices", params(ReadingsQuery), responses((status = 200, body = Vec<Object>)))]
pub async fn readings(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<ReadingsQuery>,
) -> ApiResult<Json<Vec<StoredReading>>> {
    let d = load(&state, &id).await?;
    if !caller.user.role.allows(Permission::ViewDevices) {
        caller.require(Permission::ExecuteSteps)?;
        if !caller.actor().may_operate_at(&d.station_id) {
            return Err(ApiError::forbidden(format!(
                "device {id} is at station {}, which is not yours",
                d.station_id
            )));
        }
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(
        state
            .store
            .list_readings(&id, q.unbound.unwrap_or(false), limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationRequest {
    /// `calibration` or `routine_test`.
    #[schema(value_type = String)]
    pub kind: CalibrationKind,
    /// `pass` or `fail`.
    #[schema(value_type = String)]
    pub outcome: CalibrationOutcome,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub performed_at: OffsetDateTime,
    /// The last day the result is valid (`YYYY-MM-DD`).
    #[serde(with = "calibration::iso_date")]
    #[schema(value_type = String, format = Date)]
    pub next_due: Date,
    pub scale_serial: Option<String>,
    /// Certificate number, or the reference weights used.
    pub reference: String,
    pub performed_by: String,
    pub notes: Option<String>,
}

/// Record a calibration or routine test of the scale at a device.
#[utoipa::path(post, path = "/api/devices/{id}/calibrations", tag = "devices", request_body = CalibrationRequest, responses((status = 201, body = Object)))]
pub async fn add_calibration(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(req): Body<CalibrationRequest>,
) -> ApiResult<(StatusCode, Json<CalibrationRecord>)> {
    caller.require(Permission::RecordCalibration)?;
    let device = load(&state, &id).await?;
    // A calibration decides whether the scale may decide mass checks: supervisors vouch for
    // the scales of their own stations only (admins for any).
    if !caller.actor().may_operate_at(&device.station_id) {
        return Err(ApiError::forbidden(format!(
            "device {id} is at station {}, which is not one of yours",
            device.station_id
        )));
    }
    let now = OffsetDateTime::now_utc();
    let mut problems = Vec::new();
    if req.reference.trim().is_empty() {
        problems.push("reference: give the certificate number or the reference weights");
    }
    if req.performed_by.trim().is_empty() {
        problems.push("performed_by: say who calibrated or tested the scale");
    }
    if req.performed_at > now + time::Duration::minutes(5) {
        problems.push("performed_at: a calibration cannot be in the future");
    }
    if req.next_due < req.performed_at.date() {
        problems.push("next_due: the due date is before the calibration");
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems.join("; ")));
    }
    let record = CalibrationRecord {
        id: uuid::Uuid::new_v4().to_string(),
        device_id: id.clone(),
        kind: req.kind,
        outcome: req.outcome,
        performed_at: req.performed_at,
        next_due: req.next_due,
        scale_serial: req
            .scale_serial
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        reference: req.reference.trim().to_string(),
        performed_by: req.performed_by.trim().to_string(),
        notes: req.notes,
        recorded_by: caller.user.username.clone(),
        recorded_at: now,
    };
    let a = audit(
        &caller.user.username,
        "calibration_recorded",
        format!("device:{id}"),
        json!({ "kind": record.kind, "outcome": record.outcome, "next_due": record.next_due.to_string(), "reference": record.reference }),
        caller.ip.clone(),
    );
    state.store.add_calibration(&record, &[a]).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

#[utoipa::path(get, path = "/api/devices/{id}/calibrations", tag = "devices", responses((status = 200, body = Vec<Object>)))]
pub async fn calibrations(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Vec<CalibrationRecord>>> {
    caller.require(Permission::ViewDevices)?;
    let _ = load(&state, &id).await?;
    Ok(Json(state.store.calibrations(&id).await?))
}

/// A device's keys (public halves), oldest first.
#[utoipa::path(get, path = "/api/devices/{id}/keys", tag = "devices", responses((status = 200, body = Vec<Object>)))]
pub async fn keys(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Vec<DeviceKeyRecord>>> {
    caller.require(Permission::ViewDevices)?;
    let _ = load(&state, &id).await?;
    Ok(Json(state.store.device_keys(&id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_compare_loosely() {
        let c = new_code();
        assert_eq!(c.len(), 19);
        assert_eq!(c.matches('-').count(), 3);
        assert!(c
            .chars()
            .all(|ch| ch == '-' || CODE_ALPHABET.contains(&(ch as u8))));
        assert_eq!(
            code_hash(&c),
            code_hash(&c.to_lowercase().replace('-', " "))
        );
        assert_ne!(code_hash(&c), code_hash(&new_code()));
    }
}
