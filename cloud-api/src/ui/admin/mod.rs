//! Admin pages, one module per thing administered: flows, devices (with their scales) and
//! users. Each form calls the JSON API's handler, so the rules are the API's.

mod device;
mod devices;
mod flow_form;
mod flows;
mod users;

use axum::Router;
use metcon_web::pages::Problem;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::http::AppState;

/// The admin routes, each module's merged.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(flows::routes())
        .merge(devices::routes())
        .merge(device::routes())
        .merge(users::routes())
}

/// The problems an API error carries (`problems: [{path, message}]`), else its detail.
pub(super) fn problems_of(e: &ApiError) -> Vec<Problem> {
    let listed: Vec<Problem> = e
        .extra
        .as_ref()
        .and_then(|x| x.get("problems"))
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| Problem {
                    path: p["path"].as_str().unwrap_or("").to_string(),
                    message: p["message"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        vec![Problem {
            path: ".".into(),
            message: e.detail.clone(),
        }]
    } else {
        listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::parse_json;
    use metcon_shared::flow::FlowContent;

    #[test]
    fn a_wrong_field_names_its_path() {
        let e = parse_json::<FlowContent>(br#"{"name": "x", "pipeline": "gold", "stations": 3}"#)
            .expect_err("refused");
        let ps = problems_of(&e);
        assert_eq!(ps[0].path, "stations");
    }
}
