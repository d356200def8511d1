//! One error type for every handler, rendered as RFC 9457 `application/problem+json`,
//! and the extractors whose rejections use it.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A problem in a request, or a failure while serving it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than allowed")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    Unprocessable {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A refusal carrying a per-item report, e.g. a bulk operation that was rolled back.
    #[error("{detail}")]
    Rejected {
        status: StatusCode,
        detail: String,
        results: serde_json::Value,
    },
    /// A write based on a version that is no longer current: 412 when `If-Match` said so,
    /// 409 when the changes since overlap the write's. It carries the current representation
    /// (and its `ETag`) and, for 409, each conflicting field.
    #[error("{detail}")]
    Stale {
        status: StatusCode,
        detail: String,
        version: i64,
        current: serde_json::Value,
        conflicts: Option<serde_json::Value>,
    },
    #[error("too many requests")]
    TooManyRequests { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
    /// An error response made below our own extractors (by axum or a layer), re-rendered.
    #[error("{1}")]
    Status(StatusCode, String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A multipart body that cannot be read: 413 past a size limit, else 400.
impl From<axum::extract::multipart::MultipartError> for AppError {
    fn from(e: axum::extract::multipart::MultipartError) -> AppError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
        }
    }
}

/// A multipart body whose boundary is missing or bad: 400 (the problem+json every error is).
impl From<axum::extract::multipart::MultipartRejection> for AppError {
    fn from(e: axum::extract::multipart::MultipartRejection) -> AppError {
        AppError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// Answers a unique-constraint violation as 409 with a message of what already exists;
/// other database errors pass through.
pub trait ConflictOnDuplicate<T> {
    fn conflict_on_duplicate(self, message: impl Into<String>) -> AppResult<T>;
}

impl<T> ConflictOnDuplicate<T> for Result<T, sqlx::Error> {
    fn conflict_on_duplicate(self, message: impl Into<String>) -> AppResult<T> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                AppError::Conflict(message.into())
            }
            _ => AppError::Database(e),
        })
    }
}

/// One invalid field of a request body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a JSON pointer-like path (`name`, `settings.temperature`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Per-item outcome, for refused bulk operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<serde_json::Value>,
    /// For a stale write (409, 412): the resource as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub current: Option<serde_json::Value>,
    /// For a 409 on overlapping changes: `[{field, base, theirs, yours}]`, the value each
    /// field had in the version the write was based on, has now, and would have had.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub conflicts: Option<serde_json::Value>,
}

impl AppError {
    /// A 422 about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        let message = message.into();
        AppError::Unprocessable {
            detail: format!("`{field}`: {message}"),
            errors: vec![FieldError {
                field: field.to_owned(),
                message,
            }],
        }
    }

    /// A 422 about several fields.
    pub fn fields(errors: Vec<FieldError>) -> AppError {
        let detail = errors
            .iter()
            .map(|e| format!("`{}`: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        AppError::Unprocessable { detail, errors }
    }

    pub fn forbidden(what: impl Into<String>) -> AppError {
        AppError::Forbidden(what.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Rejected { status, .. } | AppError::Stale { status, .. } => *status,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Status(status, _) => *status,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            AppError::Database(e) => {
                tracing::error!(error = %e, "database error");
                "the server could not complete the request; it has been logged".to_owned()
            }
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "the server could not complete the request; it has been logged".to_owned()
            }
            AppError::Unauthorized(why) => (*why).to_owned(),
            other => bounded(&other.to_string()),
        };
        let retry_after = match &self {
            AppError::TooManyRequests { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let mut stale = None;
        let (errors, results) = match self {
            AppError::Unprocessable { errors, .. } => (
                errors
                    .into_iter()
                    .map(|e| FieldError::new(bounded(&e.field), bounded(&e.message)))
                    .collect(),
                None,
            ),
            AppError::Rejected { results, .. } => (Vec::new(), Some(results)),
            AppError::Stale {
                version,
                current,
                conflicts,
                ..
            } => {
                stale = Some((version, current, conflicts));
                (Vec::new(), None)
            }
            _ => (Vec::new(), None),
        };
        let version = stale.as_ref().map(|(v, ..)| *v);
        let (current, conflicts) = stale.map_or((None, None), |(_, c, k)| (Some(c), k));
        let title = status.canonical_reason().unwrap_or("Error").to_owned();
        let problem = Problem {
            kind: format!(
                "https://nova.dev/problems/{}",
                title.to_lowercase().replace(' ', "-")
            ),
            title,
            status: status.as_u16(),
            detail,
            errors,
            results,
            current,
            conflicts,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(version) = version {
            headers.insert(header::ETAG, crate::precondition::etag(version));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// What an error says of the request, bounded: a quoted value (`like this`) is cut after
/// [`ECHO_CHARS`] characters and the whole text after [`DETAIL_CHARS`], so that an answer
/// never grows with the input it refuses.
fn bounded(text: &str) -> String {
    let mut out = String::new();
    let mut quoted = 0;
    let mut inside = false;
    for c in text.chars() {
        if out.chars().count() >= DETAIL_CHARS {
            out.push('…');
            break;
        }
        if c == '`' {
            if inside && quoted > ECHO_CHARS {
                out.push('…');
            }
            inside = !inside;
            quoted = 0;
            out.push(c);
            continue;
        }
        if inside {
            quoted += 1;
            if quoted > ECHO_CHARS {
                continue;
            }
        }
        out.push(c);
    }
    out
}

const ECHO_CHARS: usize = 48;
const DETAIL_CHARS: usize = 600;

pub type AppResult<T> = Result<T, AppError>;

/// `Json<T>` whose rejections are problem responses: malformed JSON is 400, a wrong type or
/// an unknown enum value 422, a missing content type 415 and an oversize body 413.
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => AppError::Unprocessable {
                    detail: format!("invalid request body: {}", e.body_text()),
                    errors: Vec::new(),
                },
                JsonRejection::JsonSyntaxError(e) => {
                    AppError::BadRequest(format!("malformed JSON: {}", e.body_text()))
                }
                JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
                    "expected a body with `Content-Type: application/json`".into(),
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    AppError::PayloadTooLarge
                }
                other => AppError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// An optional JSON body: no body at all is `None`, anything else must be valid JSON.
impl<T, S> axum::extract::OptionalFromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let empty = req.headers().get(header::CONTENT_TYPE).is_none()
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_none_or(|len| len.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <AppJson<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// `Query<T>` whose rejection is a 400 problem naming the parameter.
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|e: QueryRejection| {
                AppError::BadRequest(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// `Path<T>` whose rejection (e.g. a malformed UUID) is a 400 problem.
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| AppPath(p.0))
            .map_err(|e: PathRejection| {
                AppError::BadRequest(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn echoed_input_is_cut() {
        let long = "x".repeat(900_000);
        let text = bounded(&format!("unknown field `{long}`, expected `name`"));
        assert!(text.len() < 200, "{}", text.len());
        assert!(text.ends_with("expected `name`"), "{text}");
        assert_eq!(bounded("`short` stays"), "`short` stays");
        assert!(bounded(&"y".repeat(5_000)).chars().count() <= 601);
    }
}
