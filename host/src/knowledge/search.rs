//! `GET /api/knowledge/search`: full-text search over the current versions of the caller's
//! documents — SQLite FTS5 with bm25, PostgreSQL tsvector with ts_rank — with filters,
//! highlighted snippets and pagination. Chunks are the unit of retrieval.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::FileType;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Db, Filter, PageQuery};
use crate::error::{AppError, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find (all of them); `"a phrase"` for an exact phrase. 1–500 characters.
    #[param(min_length = 1, max_length = 500)]
    pub q: String,
    /// Documents attached to this agent.
    pub project_id: Option<Uuid>,
    pub tag: Option<String>,
    pub category: Option<String>,
    #[param(value_type = Option<FileType>)]
    pub file_type: Option<FileType>,
    /// Documents changed on or after this day (YYYY-MM-DD).
    pub updated_since: Option<chrono::NaiveDate>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Hit {
    pub document_id: Uuid,
    pub title: String,
    pub chunk_id: Uuid,
    /// The chunk's place in the document, from 0.
    pub position: i64,
    /// The document version the chunk belongs to (the current one).
    pub version: i64,
    /// Relevance: higher is better (bm25 negated on SQLite, ts_rank on PostgreSQL).
    pub score: f64,
    /// The matching passage with `<mark>` around the matched words.
    pub snippet: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub query: String,
    pub results: Vec<Hit>,
    pub next_cursor: Option<String>,
}

/// The words of a query as an FTS5 expression: each word quoted (so no operator syntax
/// leaks through), phrases kept, all required.
fn fts5_query(q: &str) -> String {
    let mut parts = Vec::new();
    for (i, piece) in q.split('"').enumerate() {
        let words: Vec<String> = words(piece).map(str::to_lowercase).collect();
        if words.is_empty() {
            continue;
        }
        if i % 2 == 1 {
            parts.push(format!("\"{}\"", words.join(" ")));
        } else {
            parts.extend(words.into_iter().map(|w| format!("\"{w}\"")));
        }
    }
    parts.join(" ")
}

/// The words of a query as the index tokenizes them: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Ranked chunks of the caller's documents matching `q`: `limit` of them from `offset`.
///
/// A frequent word can match a large share of all chunks, and ranking them all costs time in
/// proportion. For a one-word query the chunks whose head holds the word (see the
/// `0011_search_heads` migrations) outrank every other match, so when they alone fill the
/// requested page, that page is exact; otherwise every match is ranked.
pub async fn find(
    db: &Db,
    scope: Scope,
    q: &SearchQuery,
    limit: i64,
    offset: i64,
) -> AppResult<Vec<Hit>> {
    if words(&q.q).count() == 1 {
        let hits = ranked(db, scope, q, limit, offset, Among::Heads).await?;
        if hits.len() as i64 == limit {
            return Ok(hits);
        }
    }
    ranked(db, scope, q, limit, offset, Among::AllMatches).await
}

/// Whose documents a search looks in.
#[derive(Clone, Copy)]
pub enum Scope {
    /// Every workspace the user belongs to.
    Member(Uuid),
    /// One workspace (a workflow's `knowledge_search` node).
    Workspace(Uuid),
}

/// Which matches [`ranked`] scores.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Among {
    /// The chunks whose head holds the query's word.
    Heads,
    AllMatches,
}

/// The ranked matches of `q`, among those `among` names.
async fn ranked(
    db: &Db,
    scope: Scope,
    q: &SearchQuery,
    limit: i64,
    offset: i64,
    among: Among,
) -> AppResult<Vec<Hit>> {
    let (owner, visible) = match scope {
        Scope::Member(user) => (
            user,
            "d.workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = $1)",
        ),
        Scope::Workspace(workspace) => (workspace, "d.workspace_id = $1"),
    };
    let mut filter = Filter::after(args![owner]);
    super::documents::filter_documents(
        &mut filter,
        q.project_id,
        q.tag.as_deref(),
        q.category.as_deref(),
        q.file_type,
    );
    if let Some(day) = q.updated_since {
        let start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        filter.and(" AND d.updated_at >= {}", start);
    }
    let sql = if db.is_postgres() {
        let n = filter.bind(q.q.clone());
        // The head holds a repeated lexeme with all its positions, so for a one-lexeme query
        // its rank equals the whole vector's, without reading the whole vector.
        let (vector, heads) = if among == Among::Heads {
            ("c.head", " AND numnode(query) = 1")
        } else {
            ("c.tsv", "")
        };
        format!(
            "SELECT d.id AS document_id, d.title, c.id AS chunk_id, c.position, c.version,
                CAST(ts_rank({vector}, query) AS DOUBLE PRECISION) AS score,
                ts_headline('english', c.content, query, 'StartSel=<mark>, StopSel=</mark>, MaxWords=30, MinWords=12') AS snippet
             FROM document_chunks c
             JOIN documents d ON d.id = c.document_id
             CROSS JOIN websearch_to_tsquery('english', {n}) AS query
             WHERE {vector} @@ query{heads} AND {visible}{}
             ORDER BY score DESC, c.seq LIMIT {limit} OFFSET {offset}",
            filter.sql
        )
    } else {
        let n = filter.bind(fts5_query(&q.q));
        // `+` keeps the planner from looking each candidate up in the big index one by one:
        // the matches are read in one pass and only the candidates are scored.
        let heads = if among == Among::Heads {
            format!(
                " AND +document_chunks_fts.rowid IN (SELECT rowid FROM document_chunks_head WHERE document_chunks_head MATCH {n})"
            )
        } else {
            String::new()
        };
        format!(
            "SELECT d.id AS document_id, d.title, c.id AS chunk_id, c.position, c.version,
                -bm25(document_chunks_fts) AS score,
                snippet(document_chunks_fts, 0, '<mark>', '</mark>', '…', 24) AS snippet
             FROM document_chunks_fts
             JOIN document_chunks c ON c.seq = document_chunks_fts.rowid
             JOIN documents d ON d.id = c.document_id
             WHERE document_chunks_fts MATCH {n}{heads} AND {visible}{}
             ORDER BY score DESC, c.seq LIMIT {limit} OFFSET {offset}",
            filter.sql
        )
    };
    Ok(db.fetch_all(&sql, filter.binds).await?)
}

/// Searches the caller's documents.
#[utoipa::path(get, path = "/api/knowledge/search", tag = "knowledge", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = crate::error::Problem)))]
async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<SearchQuery>,
) -> AppResult<Json<SearchResults>> {
    if fts5_query(&q.q).is_empty() || q.q.chars().count() > 500 {
        return Err(AppError::BadRequest(
            "`q` must hold 1 to 500 characters with at least one word".into(),
        ));
    }
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    // Ranked results page by position in the ranking.
    let offset = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<i64>().ok())
            })
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                AppError::BadRequest("`cursor` is not a cursor this API issued".into())
            })?,
        None => 0,
    };
    let mut results = find(&state.db, Scope::Member(auth.id), &q, limit + 1, offset).await?;
    let next_cursor = (results.len() as i64 > limit)
        .then(|| URL_SAFE_NO_PAD.encode(format!("offset:{}", offset + limit)));
    results.truncate(limit as usize);
    Ok(Json(SearchResults {
        query: q.q,
        results,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::fts5_query;

    #[test]
    fn queries_cannot_inject_fts_syntax() {
        assert_eq!(fts5_query("refund policy"), "\"refund\" \"policy\"");
        assert_eq!(
            fts5_query("\"return window\" days"),
            "\"return window\" \"days\""
        );
        assert_eq!(
            fts5_query("a OR b NOT c*"),
            "\"a\" \"or\" \"b\" \"not\" \"c\""
        );
        assert_eq!(fts5_query("-- ;"), "");
    }
}
