//! `POST/GET /api/knowledge/documents`, `GET/PUT/DELETE /api/knowledge/documents/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{DOCUMENT_COLUMNS, Document, FileType, index, load, sha256};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Page, PageQuery, Tx, new_id, now};
use crate::db::{Filter, placeholders};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult, ConflictOnDuplicate};
use crate::precondition::{IfMatch, Versioned, not_named, stale};
use crate::projects::crud::normalize_tags;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_document, list_documents))
        .routes(routes!(get_document, update_document, delete_document))
}

/// The most text one document version may hold.
pub const MAX_CONTENT_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    /// 1–300 characters.
    pub title: String,
    /// The document's text in its format (up to 5 MiB).
    pub content: String,
    pub file_type: FileType,
    /// Defaults to the caller's personal workspace.
    pub workspace_id: Option<Uuid>,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Agents of the same workspace that answer from this document.
    #[serde(default)]
    pub project_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentDetail {
    #[serde(flatten)]
    pub document: Document,
    pub project_ids: Vec<Uuid>,
    /// The current version's content.
    pub content: String,
    /// Search chunks of the current version.
    pub chunks: i64,
}

fn validate_title(title: &str) -> AppResult<String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 300 {
        return Err(AppError::invalid("title", "must be 1 to 300 characters"));
    }
    Ok(title.to_owned())
}

fn validate_category(category: &str) -> AppResult<String> {
    let category = category.trim().to_lowercase();
    if category.chars().count() > 50 {
        return Err(AppError::invalid(
            "category",
            "must be at most 50 characters",
        ));
    }
    Ok(category)
}

pub fn validate_content(content: &str) -> AppResult<()> {
    if content.trim().is_empty() {
        return Err(AppError::invalid("content", "must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    Ok(())
}

/// Attaches the document to `project_ids`, which must be agents of its workspace.
async fn attach(
    tx: &mut Tx,
    document: Uuid,
    workspace: Uuid,
    project_ids: &[Uuid],
) -> AppResult<()> {
    tx.execute(
        "DELETE FROM document_projects WHERE document_id = $1",
        args![document],
    )
    .await?;
    if project_ids.is_empty() {
        return Ok(());
    }
    let mut binds = args![workspace];
    let list = placeholders(&mut binds, project_ids.iter().map(|p| Arg::from(*p)));
    let found: Vec<(Uuid,)> = tx
        .fetch_all(
            &format!("SELECT id FROM projects WHERE workspace_id = $1 AND id IN ({list})"),
            binds,
        )
        .await?;
    if found.len() != project_ids.len() {
        return Err(AppError::invalid(
            "project_ids",
            "must be agents of the document's workspace",
        ));
    }
    for (project,) in found {
        tx.execute(
            "INSERT INTO document_projects (document_id, project_id) VALUES ($1, $2)",
            args![document, project],
        )
        .await?;
    }
    Ok(())
}

async fn detail(state: &AppState, caller: Uuid, id: Uuid) -> AppResult<DocumentDetail> {
    let document = load(&state.db, caller, id).await?;
    let projects: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT project_id FROM document_projects WHERE document_id = $1 ORDER BY project_id",
            args![id],
        )
        .await?;
    let (content,): (String,) = state
        .db
        .fetch_one(
            "SELECT content FROM document_versions WHERE document_id = $1 AND version = $2",
            args![id, document.current_version],
        )
        .await?;
    let (chunks,): (i64,) = state
        .db
        .fetch_one(
            "SELECT COUNT(*) FROM document_chunks WHERE document_id = $1",
            args![id],
        )
        .await?;
    Ok(DocumentDetail {
        document,
        project_ids: projects.into_iter().map(|(p,)| p).collect(),
        content,
        chunks,
    })
}

/// What a new document is made of.
pub struct NewRecord {
    pub workspace_id: Uuid,
    pub author: Uuid,
    pub title: String,
    pub file_type: FileType,
    pub category: String,
    pub tags: Vec<String>,
    pub project_ids: Vec<Uuid>,
    /// The text (for uploaded files, the text extracted from them).
    pub content: String,
    /// Of the original bytes: identical files are found by it.
    pub sha256: String,
}

/// The document of the workspace with this digest, if any.
pub async fn find_duplicate(
    tx: &mut Tx,
    workspace_id: Uuid,
    digest: &str,
) -> AppResult<Option<(Uuid, String)>> {
    Ok(tx
        .fetch_optional(
            "SELECT id, title FROM documents WHERE workspace_id = $1 AND sha256 = $2",
            args![workspace_id, digest],
        )
        .await?)
}

/// Stores and indexes a document (version 1); 409 when its digest is already there.
/// Stores a new document and indexes it (large content by a queued job).
pub async fn insert(tx: &mut Tx, r: NewRecord) -> AppResult<(Uuid, index::Indexing)> {
    if let Some((other, other_title)) = find_duplicate(tx, r.workspace_id, &r.sha256).await? {
        return Err(AppError::Conflict(format!(
            "the same content is already document {other} (\"{other_title}\")"
        )));
    }
    let id = new_id();
    let at = now();
    let size = r.content.len() as i64;
    tx.execute(
        "INSERT INTO documents (id, workspace_id, title, file_type, category, tags, current_version,
            sha256, size_bytes, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $10)",
        args![id, r.workspace_id, r.title.clone(), r.file_type.as_str(), r.category, serde_json::json!(r.tags), &r.sha256, size, r.author, at],
    )
    .await
    // An identical document committed since the check above (a concurrent upload).
    .conflict_on_duplicate("the same content is already a document of this workspace")?;
    tx.execute(
        "INSERT INTO document_versions (document_id, version, content, sha256, size_bytes, note, created_by, created_at)
         VALUES ($1, 1, $2, $3, $4, '', $5, $6)",
        args![id, r.content.as_str(), &r.sha256, size, r.author, at],
    )
    .await?;
    attach(tx, id, r.workspace_id, &r.project_ids).await?;
    super::record_event(
        tx,
        r.author,
        "knowledge.document.created",
        (r.workspace_id, id, &r.title),
        serde_json::json!({"version": 1, "project_ids": r.project_ids}),
    )
    .await?;
    let indexing =
        index::reindex(tx, id, r.workspace_id, 1, r.file_type, &r.content, r.author).await?;
    Ok((id, indexing))
}

/// Adds a document and indexes it. Content identical to a document of the same workspace
/// is refused (409) and names that document.
#[utoipa::path(post, path = "/api/knowledge/documents", tag = "knowledge", security(("bearer" = [])),
    request_body = NewDocument,
    responses((status = 201, body = DocumentDetail), (status = 409, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_document(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewDocument>,
) -> AppResult<(StatusCode, Json<DocumentDetail>)> {
    let title = validate_title(&req.title)?;
    if matches!(req.file_type, FileType::Pdf | FileType::Docx) {
        return Err(AppError::invalid(
            "file_type",
            "pdf and docx files are uploaded with POST /api/knowledge/upload/bulk",
        ));
    }
    validate_content(&req.content)?;
    let category = validate_category(&req.category)?;
    let tags = normalize_tags(&req.tags)?;
    let workspace_id = crate::access::target_workspace(&state, &auth, req.workspace_id).await?;
    let digest = sha256(&req.content);
    let mut tx = state.db.begin().await?;
    let (id, _) = insert(
        &mut tx,
        NewRecord {
            workspace_id,
            author: auth.id,
            title,
            file_type: req.file_type,
            category,
            tags,
            project_ids: req.project_ids,
            content: req.content,
            sha256: digest,
        },
    )
    .await?;
    state.events.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(detail(&state, auth.id, id).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    pub workspace_id: Option<Uuid>,
    /// Attached to this agent.
    pub project_id: Option<Uuid>,
    pub tag: Option<String>,
    pub category: Option<String>,
    #[param(value_type = Option<FileType>)]
    pub file_type: Option<FileType>,
    /// Text in the title.
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The document filters that listing and search share: attached to an agent, with a tag, of a
/// category or file type.
pub(super) fn filter_documents(
    filter: &mut Filter,
    project_id: Option<Uuid>,
    tag: Option<&str>,
    category: Option<&str>,
    file_type: Option<FileType>,
) {
    if let Some(p) = project_id {
        filter.and(
            " AND EXISTS (SELECT 1 FROM document_projects dp WHERE dp.document_id = d.id AND dp.project_id = {})",
            p,
        );
    }
    if let Some(tag) = tag.filter(|t| !t.is_empty()) {
        filter.and(
            " AND CAST(d.tags AS TEXT) LIKE {}",
            format!(
                "%\"{}\"%",
                tag.trim().to_lowercase().replace(['%', '_', '"'], "")
            ),
        );
    }
    if let Some(c) = category.filter(|c| !c.is_empty()) {
        filter.and(" AND d.category = {}", c.trim().to_lowercase());
    }
    if let Some(t) = file_type {
        filter.and(" AND d.file_type = {}", t.as_str());
    }
}

/// The documents of the caller's workspaces, newest first.
#[utoipa::path(get, path = "/api/knowledge/documents", tag = "knowledge", security(("bearer" = [])),
    params(DocumentQuery),
    responses((status = 200, body = Page<Document>)))]
async fn list_documents(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<DocumentQuery>,
) -> AppResult<Json<Page<Document>>> {
    let mut filter = Filter::after(args![auth.id]);
    if let Some(ws) = q.workspace_id {
        filter.and(" AND d.workspace_id = {}", ws);
    }
    filter_documents(
        &mut filter,
        q.project_id,
        q.tag.as_deref(),
        q.category.as_deref(),
        q.file_type,
    );
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        filter.and(
            " AND LOWER(d.title) LIKE {} ESCAPE '\\'",
            crate::db::contains_pattern(text),
        );
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let documents = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents d
                 JOIN workspace_members m ON m.workspace_id = d.workspace_id AND m.user_id = $1
                 WHERE 1 = 1{}",
                filter.sql
            ),
            "d.id",
            filter.binds,
            &page,
            |d: &Document| d.id,
        )
        .await?;
    Ok(Json(documents))
}

/// One document with its current content.
#[utoipa::path(get, path = "/api/knowledge/documents/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DocumentDetail, headers(("ETag" = String, description = "The document's version, for If-Match"))),
        (status = 404, body = crate::error::Problem)))]
async fn get_document(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Versioned<Json<DocumentDetail>>> {
    let detail = detail(&state, auth.id, id).await?;
    Ok(Versioned(detail.document.version, Json(detail)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentUpdate {
    pub title: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub project_ids: Option<Vec<Uuid>>,
    /// The `version` this change was based on (409 when the document changed since).
    pub version: Option<i64>,
}

/// Changes a document's title, category, tags or agents (new content is a new version).
/// A `version` in the body other than the current one answers 409; an `If-Match` naming
/// another version, 412 with the current document.
#[utoipa::path(put, path = "/api/knowledge/documents/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag this write is based on")),
    request_body = DocumentUpdate,
    responses((status = 200, body = DocumentDetail, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_document(
    State(state): State<AppState>,
    auth: AuthUser,
    if_match: IfMatch,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<DocumentUpdate>,
) -> AppResult<Versioned<Json<DocumentDetail>>> {
    let mut tx = state.db.begin().await?;
    let doc = load(&mut tx, auth.id, id).await?;
    doc.require_editor(auth.id)?;
    let title = req
        .title
        .as_deref()
        .map(validate_title)
        .transpose()?
        .unwrap_or(doc.title.clone());
    let category = req
        .category
        .as_deref()
        .map(validate_category)
        .transpose()?
        .unwrap_or(doc.category.clone());
    let tags = match &req.tags {
        Some(t) => normalize_tags(t)?,
        None => doc.tags.0.clone(),
    };
    // Preconditions are weighed once the request is known to be valid (RFC 9110 13.2.1).
    if !if_match.holds(doc.version) {
        drop(tx);
        let detail = not_named("document", doc.version);
        return Err(refused(&state, auth.id, id, StatusCode::PRECONDITION_FAILED, detail).await);
    }
    let base = req.version.unwrap_or(doc.version);
    let written = tx
        .execute(
            "UPDATE documents SET title = $2, category = $3, tags = $4, updated_at = $5,
                version = version + 1
             WHERE id = $1 AND version = $6",
            args![
                id,
                title.clone(),
                category,
                serde_json::json!(tags),
                now(),
                base
            ],
        )
        .await?;
    if written == 0 {
        drop(tx);
        let detail = format!("the document changed since version {base}; read it again");
        return Err(refused(&state, auth.id, id, if_match.lost_race(), detail).await);
    }
    if let Some(projects) = &req.project_ids {
        attach(&mut tx, id, doc.workspace_id, projects).await?;
    }
    super::record_event(
        &mut tx,
        auth.id,
        "knowledge.document.updated",
        (doc.workspace_id, id, &title),
        serde_json::json!({"version": doc.current_version}),
    )
    .await?;
    state.events.commit(tx).await?;
    let saved = detail(&state, auth.id, id).await?;
    Ok(Versioned(saved.document.version, Json(saved)))
}

/// A write over another version than the document's, refused with the document as it is now.
async fn refused(
    state: &AppState,
    caller: Uuid,
    id: Uuid,
    status: StatusCode,
    detail: String,
) -> AppError {
    match self::detail(state, caller, id).await {
        Ok(now) => stale(status, detail, now.document.version, now, None),
        Err(e) => e,
    }
}

/// Deletes a document, its versions and its index entries.
#[utoipa::path(delete, path = "/api/knowledge/documents/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn delete_document(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let doc = load(&mut tx, auth.id, id).await?;
    doc.require_editor(auth.id)?;
    // Chunks first, so that SQLite's index trigger sees each one go.
    tx.execute(
        "DELETE FROM document_chunks WHERE document_id = $1",
        args![id],
    )
    .await?;
    tx.execute("DELETE FROM documents WHERE id = $1", args![id])
        .await?;
    crate::team::audit(
        &mut tx,
        doc.workspace_id,
        auth.id,
        "document.delete",
        "document",
        Some(id.to_string()),
        serde_json::json!({"title": doc.title}),
    )
    .await?;
    super::record_event(
        &mut tx,
        auth.id,
        "knowledge.document.deleted",
        (doc.workspace_id, id, &doc.title),
        serde_json::json!({}),
    )
    .await?;
    state.events.commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
