//! One error type for every handler, rendered as RFC 9457 problem details.
//!
//! Handlers return `Result<_, ApiError>` and use `?`; domain and store errors convert here, so
//! the mapping from "what went wrong" to a status code lives in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metcon_shared::batch::BatchError;
use metcon_shared::flow::FlowError;
use serde_json::{json, Value};

use crate::store::StoreError;

/// A problem to report to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Short slug naming the problem type, e.g. `conflict`; becomes the `type` URI.
    pub kind: &'static str,
    pub detail: String,
    /// Extra members, e.g. `problems` for validation errors.
    pub extra: Option<Value>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            detail: detail.into(),
            extra: None,
            retry_after_secs: None,
        }
    }

    pub fn with_extra(mut self, extra: Value) -> ApiError {
        self.extra = Some(extra);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on the server; the error was logged",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://metcon.dev/problems/{}", self.kind),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
        let mut res = (self.status, body.to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::conflict(e.to_string()),
            StoreError::Duplicate(_) | StoreError::LastAdmin => ApiError::conflict(e.to_string()),
            StoreError::NotFound(_) => ApiError::not_found(e.to_string()),
            StoreError::Corrupt(_) | StoreError::Backend(_) => ApiError::internal(e),
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match &e {
            FlowError::Invalid(problems) => {
                ApiError::unprocessable(e.to_string()).with_extra(json!({ "problems": problems }))
            }
            FlowError::NotDraft { .. }
            | FlowError::NotActive { .. }
            | FlowError::NotYetEffective { .. } => ApiError::conflict(e.to_string()),
        }
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        use BatchError as B;
        match e {
            B::Flow(f) => f.into(),
            B::Forbidden { .. } | B::NotYourStation { .. } => ApiError::forbidden(e.to_string()),
            B::UnknownStep { .. } | B::NoSuchOpenFlag { .. } => ApiError::not_found(e.to_string()),
            B::WrongStatus { .. }
            | B::NotCurrentStep { .. }
            | B::NoStepsLeft
            | B::OwnFlag
            | B::OpenFlags { .. }
            | B::OverrideNotBackward
            | B::StepsRemaining { .. }
            | B::EmptyFlow
            | B::FlowMismatch { .. } => ApiError::conflict(e.to_string()),
            B::WrongStepType { .. }
            | B::NotAcknowledged
            | B::ChecklistIncomplete { .. }
            | B::ChecklistUnknownItems { .. }
            | B::WrongSignatureMeaning { .. }
            | B::BadPhotoReference
            | B::ReasonRequired => ApiError::unprocessable(e.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
