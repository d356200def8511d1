//! `POST/GET /api/knowledge/documents/{id}/versions`, `GET …/versions/{n}/diff` (seed §4).
//! A new version becomes current and the search index follows it.

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::documents::validate_content;
use super::{Document, FileType, index, load, sha256};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Cursor, Page, PageQuery, Tx, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult, ConflictOnDuplicate};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_version, list_versions))
        .routes(routes!(diff))
        // A new version may be a file of up to 10 MiB.
        .layer(DefaultBodyLimit::max(
            super::upload::MAX_FILE_BYTES + 1024 * 1024,
        ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// The new content, in the document's format.
    pub content: String,
    /// What changed.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Version {
    pub version: i64,
    pub sha256: String,
    pub size_bytes: i64,
    pub note: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Agent answers that cited this version: the version's impact on responses.
    pub answer_count: i64,
}

const VERSION_COLUMNS: &str =
    "version, sha256, size_bytes, note, created_by, created_at, answer_count";

fn file_type(name: &str) -> FileType {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or(FileType::Txt)
}

/// Adds a version (author or workspace admin): JSON `{content, note}` is stored at once (201);
/// a multipart `file` (txt, md, html, csv, json, pdf or docx, at most 10 MiB) with an optional
/// `note` is extracted by the bulk-upload job, with its limits and progress, and answered with
/// the upload to follow (202, `GET /api/knowledge/upload/bulk/{id}`). Content identical to the
/// current version is refused (409; for a file, the file ends `duplicate`).
#[utoipa::path(post, path = "/api/knowledge/documents/{id}/versions", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content(
        (NewVersion = "application/json"),
        (Object = "multipart/form-data"))),
    responses((status = 201, body = Version), (status = 202, body = super::upload::UploadStatus),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn add_version(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    request: Request,
) -> AppResult<Response> {
    if is_multipart(request.headers()) {
        // Who may change the document is settled before the file is read.
        let doc = load(&state.db, auth.id, id).await?;
        doc.require_editor(auth.id)?;
        state.count_job_start(auth.id).await?;
        let form = Multipart::from_request(request, &state).await?;
        let status = super::upload::queue_version(&state, auth.id, &doc, form).await?;
        return Ok((StatusCode::ACCEPTED, Json(status)).into_response());
    }
    let AppJson(req) = AppJson::<NewVersion>::from_request(request, &state).await?;
    validate_content(&req.content)?;
    check_note(&req.note)?;
    let mut tx = state.db.begin().await?;
    let doc = load(&mut tx, auth.id, id).await?;
    doc.require_editor(auth.id)?;
    let (created, _) = add(&mut tx, auth.id, &doc, &req.content, &req.note).await?;
    state.events.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Whether the new version comes as a file (multipart) rather than as JSON.
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        })
}

/// A version's note: at most 500 characters.
pub fn check_note(note: &str) -> AppResult<()> {
    if note.chars().count() > 500 {
        return Err(AppError::invalid("note", "must be at most 500 characters"));
    }
    Ok(())
}

/// Stores `content` as the document's next version in `tx` (the caller checked who may):
/// current from now on, indexed (or queued for indexing when large), announced.
pub async fn add(
    tx: &mut Tx,
    caller: Uuid,
    doc: &Document,
    content: &str,
    note: &str,
) -> AppResult<(Version, index::Indexing)> {
    let digest = sha256(content);
    if digest == doc.sha256 {
        return Err(AppError::Conflict(
            "the content is the same as the current version".into(),
        ));
    }
    let id = doc.id;
    let version = doc.current_version + 1;
    let at = now();
    tx.execute(
        "INSERT INTO document_versions (document_id, version, content, sha256, size_bytes, note, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![id, version, content, &digest, content.len() as i64, note.trim(), caller, at],
    )
    .await?;
    tx.execute(
        "UPDATE documents SET current_version = $2, sha256 = $3, size_bytes = $4, updated_at = $5,
            version = version + 1
         WHERE id = $1",
        args![id, version, &digest, content.len() as i64, at],
    )
    .await
    .conflict_on_duplicate("the same content is already another document of this workspace")?;
    let indexing = index::reindex(
        tx,
        id,
        doc.workspace_id,
        version,
        file_type(&doc.file_type),
        content,
        caller,
    )
    .await?;
    let created: Version = tx
        .fetch_one(
            &format!("SELECT {VERSION_COLUMNS} FROM document_versions WHERE document_id = $1 AND version = $2"),
            args![id, version],
        )
        .await?;
    super::record_event(
        tx,
        caller,
        "knowledge.document.updated",
        (doc.workspace_id, id, &doc.title),
        serde_json::json!({"version": version}),
    )
    .await?;
    Ok((created, indexing))
}

/// The document's versions, newest first.
#[utoipa::path(get, path = "/api/knowledge/documents/{id}/versions", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Page<Version>), (status = 404, body = crate::error::Problem)))]
async fn list_versions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<Version>>> {
    load(&state.db, auth.id, id).await?;
    let limit = page.limit()?;
    let before = page.integer_cursor("version")?.unwrap_or(i64::MAX);
    let rows: Vec<Version> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM document_versions WHERE document_id = $1 AND version < $2
                 ORDER BY version DESC LIMIT {}",
                limit + 1
            ),
            args![id, before],
        )
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |v| Cursor {
        sort: "version".into(),
        value: Some(v.version.to_string()),
        id,
    })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffLine {
    /// `+` added, `-` removed, ` ` unchanged.
    pub op: String,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDiff {
    pub document_id: Uuid,
    pub from_version: i64,
    pub to_version: i64,
    pub added: usize,
    pub removed: usize,
    /// The diff, line by line: at most 10,000 lines (`added` and `removed` count them all).
    pub lines: Vec<DiffLine>,
    /// True when `lines` stops before the end of the diff.
    pub truncated: bool,
}

/// The line diff of version `n` against version `n − 1`.
#[utoipa::path(get, path = "/api/knowledge/documents/{id}/versions/{n}/diff", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("n" = i64, Path)),
    responses((status = 200, body = VersionDiff), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn diff(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, n)): AppPath<(Uuid, i64)>,
) -> AppResult<Json<VersionDiff>> {
    load(&state.db, auth.id, id).await?;
    if n < 2 {
        return Err(AppError::invalid("n", "version 1 has no previous version"));
    }
    let rows: Vec<(i64, String)> = state
        .db
        .fetch_all(
            "SELECT version, content FROM document_versions WHERE document_id = $1 AND version IN ($2, $3)
             ORDER BY version",
            args![id, n - 1, n],
        )
        .await?;
    let [(_, old), (_, new)] =
        <[(i64, String); 2]>::try_from(rows).map_err(|_| AppError::NotFound("version"))?;
    // Diffing is CPU work proportional to the documents: it runs on a blocking thread, under
    // a deadline past which `similar` settles for a coarser (still correct) diff.
    let (added, removed, lines, truncated) =
        tokio::task::spawn_blocking(move || line_diff(&old, &new))
            .await
            .map_err(anyhow::Error::from)?;
    Ok(Json(VersionDiff {
        document_id: id,
        from_version: n - 1,
        to_version: n,
        added,
        removed,
        lines,
        truncated,
    }))
}

/// How long a diff may search for the smallest edit.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);
/// The most diff lines an answer lists (the counts cover them all).
pub const MAX_DIFF_LINES: usize = 10_000;

/// Lines added and removed, the first [`MAX_DIFF_LINES`] lines of the diff, and whether
/// there were more.
fn line_diff(old: &str, new: &str) -> (usize, usize, Vec<DiffLine>, bool) {
    let text_diff = similar::TextDiff::configure()
        .deadline(std::time::Instant::now() + DIFF_DEADLINE)
        .diff_lines(old, new);
    let mut lines = Vec::new();
    let (mut added, mut removed, mut total) = (0, 0, 0);
    for change in text_diff.iter_all_changes() {
        let op = match change.tag() {
            similar::ChangeTag::Insert => {
                added += 1;
                "+"
            }
            similar::ChangeTag::Delete => {
                removed += 1;
                "-"
            }
            similar::ChangeTag::Equal => " ",
        };
        total += 1;
        if lines.len() < MAX_DIFF_LINES {
            lines.push(DiffLine {
                op: op.to_owned(),
                text: change.value().trim_end_matches('\n').to_owned(),
            });
        }
    }
    (added, removed, lines, total > MAX_DIFF_LINES)
}
