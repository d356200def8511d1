//! Versions on the wire (RFC 9110): a versioned resource answers with `ETag: "v<version>"`,
//! and a write may say which version it was based on with `If-Match` — a write over any
//! other version is refused with 412 and the current representation.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{AppError, AppResult};

/// A refusal of a write over a version other than its base (409 or 412), carrying the
/// resource as it is now (`current`, with its `ETag`) and, for overlapping edits, `conflicts`.
pub fn stale(
    status: StatusCode,
    detail: String,
    version: i64,
    current: impl Serialize,
    conflicts: Option<serde_json::Value>,
) -> AppError {
    AppError::Stale {
        status,
        detail,
        version,
        current: serde_json::to_value(current).unwrap_or_default(),
        conflicts,
    }
}

/// Why a write with `If-Match` was refused: `what` is at `version`.
pub fn not_named(what: &str, version: i64) -> String {
    format!("the {what} is at version {version}, which `If-Match` does not name")
}

/// The entity tag of `version`.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"v{version}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// A response carrying its resource's version as the `ETag` header.
pub struct Versioned<T>(pub i64, pub T);

impl<T: IntoResponse> IntoResponse for Versioned<T> {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        response.headers_mut().insert(header::ETAG, etag(self.0));
        response
    }
}

/// What `If-Match` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header: the write applies as it would without one.
    Absent,
    /// `*`: any current representation.
    Any,
    /// The versions of the listed strong tags (a weak tag never matches, as RFC 9110's strong
    /// comparison says; a tag this API did not issue never matches either).
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Whether a resource at `current` meets the precondition.
    pub fn holds(&self, current: i64) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&current),
        }
    }

    /// 412 with the resource (`what`, at `version`, shown by `current`) unless it meets the
    /// precondition.
    pub fn check<T: Serialize>(
        &self,
        what: &str,
        version: i64,
        current: impl FnOnce() -> T,
    ) -> AppResult<()> {
        if self.holds(version) {
            return Ok(());
        }
        Err(stale(
            StatusCode::PRECONDITION_FAILED,
            not_named(what, version),
            version,
            current(),
            None,
        ))
    }

    /// How a write that lost the race to a concurrent writer is refused: under `If-Match` it
    /// is the same failed precondition (412); otherwise a conflict (409).
    pub fn lost_race(&self) -> StatusCode {
        match self {
            IfMatch::Absent => StatusCode::CONFLICT,
            _ => StatusCode::PRECONDITION_FAILED,
        }
    }

    /// The version the write says it was based on, when it names exactly one.
    pub fn base(&self) -> Option<i64> {
        match self {
            IfMatch::Versions(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }

    fn parse(value: &str) -> IfMatch {
        if value.trim() == "*" {
            return IfMatch::Any;
        }
        let versions = value
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.starts_with("W/"))
            .filter_map(|tag| tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok())
            .collect();
        IfMatch::Versions(versions)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<IfMatch, AppError> {
        let mut values = parts
            .headers
            .get_all(header::IF_MATCH)
            .iter()
            .filter(|v| !v.as_bytes().trim_ascii().is_empty())
            .peekable();
        // An empty header names nothing to compare: the write applies as without one.
        if values.peek().is_none() {
            return Ok(IfMatch::Absent);
        }
        let mut joined = String::new();
        for value in values {
            let text = value
                .to_str()
                .map_err(|_| AppError::BadRequest("`If-Match` is not ASCII".into()))?;
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(text);
        }
        Ok(IfMatch::parse(&joined))
    }
}

#[cfg(test)]
mod tests {
    use super::IfMatch;

    #[test]
    fn strong_tags_match_their_version_only() {
        assert_eq!(IfMatch::parse("*"), IfMatch::Any);
        assert_eq!(IfMatch::parse("\"v3\""), IfMatch::Versions(vec![3]));
        assert_eq!(
            IfMatch::parse("\"v3\", W/\"v4\", \"x\", \"v5\""),
            IfMatch::Versions(vec![3, 5])
        );
        assert!(IfMatch::parse("W/\"v4\"").holds(4).eq(&false));
        assert!(IfMatch::parse("\"v4\"").holds(4));
        assert!(!IfMatch::parse("\"v4\"").holds(5));
        assert!(IfMatch::Absent.holds(9));
    }
}
