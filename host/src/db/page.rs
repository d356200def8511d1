//! Keyset pagination, the one way every list pages.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Arg, Db, Row};
use crate::error::AppError;

/// Keyset pagination: `limit` (default 50, max 200) and an opaque `cursor` in,
/// `next_cursor` out. Used by every list endpoint.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Where a page starts: the sort value and id of the last row of the previous page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    /// The sort the cursor was made for; a cursor is only valid with the same sort.
    #[serde(rename = "s", default, skip_serializing_if = "String::is_empty")]
    pub sort: String,
    /// The sort column's value of the last row (absent when sorting by id alone).
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl Cursor {
    /// A cursor for lists ordered by id alone.
    pub fn by_id(id: Uuid) -> Cursor {
        Cursor {
            sort: String::new(),
            value: None,
            id,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> Result<Cursor, AppError> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::BadRequest("`cursor` is not a cursor this API issued".into()))
    }
}

impl PageQuery {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 200;

    /// The validated page size.
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(AppError::BadRequest(format!(
                "`limit` must be between 1 and {}, got {n}",
                Self::MAX_LIMIT
            ))),
        }
    }

    /// The decoded cursor, checked against the sort it must have been made for.
    pub fn cursor(&self, sort: &str) -> Result<Option<Cursor>, AppError> {
        let Some(raw) = self.cursor.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let cursor = Cursor::decode(raw)?;
        if cursor.sort != sort {
            return Err(AppError::BadRequest(
                "`cursor` was made for another sort order; start again without it".into(),
            ));
        }
        Ok(Some(cursor))
    }

    /// The integer sort value (a sequence number, a version, a position) a cursor made for
    /// `sort` carries.
    pub fn integer_cursor(&self, sort: &str) -> Result<Option<i64>, AppError> {
        self.cursor(sort)?
            .map(|c| {
                c.value.and_then(|v| v.parse().ok()).ok_or_else(|| {
                    AppError::BadRequest("`cursor` is not a cursor this API issued".into())
                })
            })
            .transpose()
    }
}

/// One page of a list: the items and, when more follow, the cursor of the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row only
    /// tells that another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| cursor_of(r).encode())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

impl Db {
    /// One page of `select` (which ends in a `WHERE` clause over `binds`) ordered by the
    /// UUID v7 column `id_column` (creation order), newest first.
    pub async fn page_newest_first<T: Row>(
        &self,
        select: &str,
        id_column: &str,
        mut binds: Vec<Arg>,
        page: &PageQuery,
        id_of: impl Fn(&T) -> Uuid,
    ) -> Result<Page<T>, AppError> {
        let limit = page.limit()?;
        let mut after = String::new();
        if let Some(cursor) = page.cursor("")? {
            binds.push(cursor.id.into());
            after = format!(" AND {id_column} < ${}", binds.len());
        }
        let rows = self
            .fetch_all(
                &format!(
                    "{select}{after} ORDER BY {id_column} DESC LIMIT {}",
                    limit + 1
                ),
                binds,
            )
            .await?;
        Ok(Page::from_rows(rows, limit, |r| Cursor::by_id(id_of(r))))
    }
}
