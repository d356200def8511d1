//! The storage seam: one `Db` that speaks SQLite (the embedded default) or PostgreSQL.
//!
//! Queries are written once with `$1`-style placeholders (SQLite accepts them too) and bound
//! through [`Arg`], so handlers and section queries never care which database is behind them.
//! The rare dialect difference is a `db.is_postgres()` branch next to the query that needs it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Sqlite, Transaction};
use uuid::Uuid;

use crate::error::AppError;

/// A bind value with its SQL type, so that NULLs are typed (PostgreSQL insists).
#[derive(Debug, Clone)]
pub enum Arg {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Date(Option<chrono::NaiveDate>),
    Json(Option<serde_json::Value>),
    Bytes(Option<Vec<u8>>),
}

macro_rules! arg_from {
    ($($t:ty => $variant:ident $(via $conv:expr)?),* $(,)?) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self { Arg::$variant(Some(arg_from!(@conv v $(, $conv)?))) }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Self { Arg::$variant(v.map(|v| arg_from!(@conv v $(, $conv)?))) }
        }
    )*};
    (@conv $v:ident) => { $v };
    (@conv $v:ident, $conv:expr) => { ($conv)($v) };
}

arg_from! {
    Uuid => Uuid,
    String => Text,
    &str => Text via |s: &str| s.to_owned(),
    &String => Text via |s: &String| s.clone(),
    i64 => Int,
    f64 => Float,
    bool => Bool,
    DateTime<Utc> => Time,
    chrono::NaiveDate => Date,
    Vec<u8> => Bytes,
    serde_json::Value => Json,
    &serde_json::Value => Json via |v: &serde_json::Value| v.clone(),
}

/// Builds a `Vec<Arg>` from values of mixed types.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Arg::from($v)),*] };
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                Arg::Uuid(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::Date(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Json(v) => q.bind(v.map(Json)),
            };
        }
        q
    }};
}

/// A row type readable from both backends.
pub trait Row: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> {}
impl<T> Row for T where T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{}

/// A scalar readable from both backends.
pub trait Scalar:
    Send
    + Unpin
    + for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}
impl<T> Scalar for T where
    T: Send
        + Unpin
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// The same four operations on a pool, a transaction or a single connection.
macro_rules! query_methods {
    ($($recv:tt)*) => {
        pub async fn execute($($recv)* self, sql: &str, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
            Ok(match self.inner() {
                Inner::Sqlite(c) => bind_args!(sqlx::query(sql), args).execute(c).await?.rows_affected(),
                Inner::Postgres(c) => bind_args!(sqlx::query(sql), args).execute(c).await?.rows_affected(),
            })
        }
        pub async fn fetch_all<T: Row>($($recv)* self, sql: &str, args: Vec<Arg>) -> Result<Vec<T>, sqlx::Error> {
            match self.inner() {
                Inner::Sqlite(c) => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_all(c).await,
                Inner::Postgres(c) => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_all(c).await,
            }
        }
        pub async fn fetch_optional<T: Row>($($recv)* self, sql: &str, args: Vec<Arg>) -> Result<Option<T>, sqlx::Error> {
            match self.inner() {
                Inner::Sqlite(c) => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_optional(c).await,
                Inner::Postgres(c) => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_optional(c).await,
            }
        }
        pub async fn fetch_one<T: Row>($($recv)* self, sql: &str, args: Vec<Arg>) -> Result<T, sqlx::Error> {
            match self.inner() {
                Inner::Sqlite(c) => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_one(c).await,
                Inner::Postgres(c) => bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_one(c).await,
            }
        }
        pub async fn scalar<T: Scalar>($($recv)* self, sql: &str, args: Vec<Arg>) -> Result<T, sqlx::Error> {
            match self.inner() {
                Inner::Sqlite(c) => bind_args!(sqlx::query_scalar::<_, T>(sql), args).fetch_one(c).await,
                Inner::Postgres(c) => bind_args!(sqlx::query_scalar::<_, T>(sql), args).fetch_one(c).await,
            }
        }
    };
}

/// The database behind the host: a cheap, cloneable pool handle.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either backend; dropped without `commit` it rolls back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// What sqlx executes on: `&Pool` for `Db`, `&mut Connection` for `Tx`.
enum Inner<S, P> {
    Sqlite(S),
    Postgres(P),
}

impl Db {
    /// Opens `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Db::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Keeps the planner's statistics fresh, so list queries walk the right index.
                .optimize_on_close(true, None);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            Db::Sqlite(pool)
        };
        Ok(db)
    }

    /// The URL of the embedded database inside `data_dir`, creating the directory.
    pub fn sqlite_url_in(data_dir: &Path) -> anyhow::Result<String> {
        std::fs::create_dir_all(data_dir)?;
        Ok(format!("sqlite://{}", data_dir.join("nova.db").display()))
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => sqlx::migrate!("../migrations/sqlite").run(p).await?,
            Db::Postgres(p) => sqlx::migrate!("../migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub fn backend_name(&self) -> &'static str {
        if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers wait for each other instead of failing on upgrade.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }

    fn inner(&self) -> Inner<&SqlitePool, &PgPool> {
        match self {
            Db::Sqlite(p) => Inner::Sqlite(p),
            Db::Postgres(p) => Inner::Postgres(p),
        }
    }

    query_methods!(&);
}

impl Tx {
    fn inner(&mut self) -> Inner<&mut sqlx::SqliteConnection, &mut sqlx::PgConnection> {
        match self {
            Tx::Sqlite(t) => Inner::Sqlite(&mut **t),
            Tx::Postgres(t) => Inner::Postgres(&mut **t),
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    query_methods!(&mut);
}

/// Either a pool or an open transaction, for helpers used both inside and outside one.
pub enum Exec<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Exec<'a> {
    fn from(db: &'a Db) -> Self {
        Exec::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Exec<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Exec::Tx(tx)
    }
}

impl Exec<'_> {
    pub async fn fetch_all<T: Row>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Exec::Db(db) => db.fetch_all(sql, args).await,
            Exec::Tx(tx) => tx.fetch_all(sql, args).await,
        }
    }

    pub async fn fetch_optional<T: Row>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Exec::Db(db) => db.fetch_optional(sql, args).await,
            Exec::Tx(tx) => tx.fetch_optional(sql, args).await,
        }
    }
}

/// The current time at the precision both databases keep (microseconds), so that a value
/// read back compares equal to the one written.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// Keyset pagination: `limit` (default 50, max 200) and an opaque `cursor` in,
/// `next_cursor` out. Used by every list endpoint.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
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

/// A case-insensitive `LIKE … ESCAPE '\\'` pattern matching `text` anywhere, with `%`
/// and `_` taken literally. Compare it with `LOWER(column)`.
pub fn contains_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A fresh, time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Whether a database error is a unique-constraint violation (to answer 409, not 500).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}
