//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit_log, batches, devices, flows, live, photos, reports, session, users, weighing};

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "METCON API", description = "Chain of custody for precious-metal refineries. Errors are RFC 9457 problem+json."),
    paths(
        session::setup, session::login, session::refresh, session::logout, session::me,
        users::list, users::create, users::get, users::update, users::reset_password,
        flows::list, flows::create, flows::validate, flows::versions, flows::new_version, flows::get, flows::edit, flows::publish, flows::archive,
        batches::create, batches::list, batches::get, batches::start, batches::complete_step, batches::mass_check,
        batches::raise_flag, batches::approve_flag, batches::reject_flag, batches::block, batches::unblock,
        batches::override_step, batches::complete, batches::approvals, batches::wip,
        audit_log::list, audit_log::verify,
        reports::catalogue, reports::get, reports::export, reports::chart_svg,
        weighing::arm, weighing::disarm, weighing::capture, weighing::attach, live::station_events,
        photos::upload, photos::list, photos::open,
        devices::list, devices::create, devices::get, devices::update, devices::enrollment_code,
        devices::enroll, devices::revoke, devices::rotate_key, devices::push_config, devices::command,
        devices::readings, devices::add_calibration, devices::calibrations, devices::keys,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
