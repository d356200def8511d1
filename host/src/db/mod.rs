//! The storage seam: one `Db` that speaks SQLite (the embedded default) or PostgreSQL.
//!
//! Queries are written once with `$1`-style placeholders (SQLite accepts them too) and bound
//! through [`Arg`], so handlers and section queries never care which database is behind them.
//! The rare dialect difference is a `db.is_postgres()` branch next to the query that needs it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Sqlite, Transaction};
use uuid::Uuid;

mod page;
mod sql;

pub use page::{Cursor, Page, PageQuery};
pub use sql::{Filter, contains_pattern, placeholders};

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

/// An enum stored as text: the variants with their names, and `as_str`, `parse`, `ALL` and
/// `TryFrom<String>` (for `#[sqlx(try_from = "String")]` fields) derived from them.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<$name, String> {
                $name::parse(&text).ok_or_else(|| format!("`{text}` is not a {}", stringify!($name)))
            }
        }
    };
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

/// A fresh, time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
