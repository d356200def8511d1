//! `POST /api/knowledge/upload/bulk` and `GET /api/knowledge/upload/bulk/{id}` (seed §4):
//! many files at once, answered at once with a status per file; each file is extracted and
//! indexed by a durable job, and its progress (queued, extracting, indexing — a large file's
//! chunks being written in batches —, indexed, failed with the reason, or duplicate) is
//! visible here and on the uploader's notification socket.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::FileType;
use super::documents::{MAX_CONTENT_BYTES, NewRecord, find_duplicate, insert};
use super::index::Indexing;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Tx, new_id, now};
use crate::error::{AppError, AppPath, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::infra::jobs::{JobFuture, JobHandler};
use crate::realtime::notify;
use crate::state::AppState;

pub const JOB_KIND: &str = "knowledge.index_file";
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
pub const MAX_REQUEST_BYTES: usize = 50 * 1024 * 1024;
pub const MAX_FILES: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(progress))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES + 1024 * 1024))
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct FileStatus {
    pub id: Uuid,
    pub file_name: String,
    pub size_bytes: i64,
    /// queued, extracting, indexing (a large file's chunks are being written), indexed,
    /// failed or duplicate.
    pub status: String,
    /// Why it failed, or which document it duplicates.
    pub reason: Option<String>,
    /// The document made from it, once indexed.
    pub document_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadStatus {
    pub upload_id: Uuid,
    /// Every file has reached indexed, failed or duplicate.
    pub done: bool,
    pub files: Vec<FileStatus>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Options {
    workspace_id: Option<Uuid>,
    category: String,
    tags: Vec<String>,
    project_ids: Vec<Uuid>,
    /// Set when the upload is a new version of this document rather than new documents.
    #[serde(default)]
    document_id: Option<Uuid>,
    /// The new version's note.
    #[serde(default)]
    note: String,
}

/// A part the upload does not know: refused, so that a misspelt option (`project_id`) does
/// not silently upload files attached to nothing.
fn unknown_field(name: &str) -> AppError {
    AppError::invalid(
        name,
        "is not a field of a bulk upload (files, workspace_id, category, tags, project_ids)",
    )
}

/// The format of a file, from its name.
fn file_type_of(name: &str) -> Option<FileType> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "text" | "log" => FileType::Txt,
        "md" | "markdown" => FileType::Md,
        "html" | "htm" => FileType::Html,
        "csv" => FileType::Csv,
        "json" => FileType::Json,
        "pdf" => FileType::Pdf,
        "docx" => FileType::Docx,
        _ => return None,
    })
}

/// How far a PDF's page contents may inflate in all, however many pages it has.
const PDF_INFLATE_BUDGET: usize = 64 << 20;

/// The text of a PDF: every page's, with one budget for how far all its streams inflate (a
/// per-page limit would let a thousand small bombs through).
fn pdf_text(bytes: &[u8]) -> Result<String, String> {
    let doc =
        lopdf::Document::load_mem(bytes).map_err(|e| format!("the PDF cannot be read: {e}"))?;
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err("the PDF has no pages".to_owned());
    }
    let over = || {
        format!(
            "the PDF's pages inflate past {} MiB in all",
            PDF_INFLATE_BUDGET >> 20
        )
    };
    let mut remaining = PDF_INFLATE_BUDGET;
    let mut text = String::new();
    for (number, page_id) in pages {
        // Measured first under what is left of the budget, then read for its text.
        let content = doc
            .get_page_content_with_limit(page_id, remaining)
            .map_err(|_| over())?;
        let page = doc
            .extract_text_with_limit(&[number], remaining)
            .map_err(|e| format!("the PDF's text cannot be read: {e}"))?;
        remaining = remaining.checked_sub(content.len()).ok_or_else(over)?;
        text.push_str(&page);
    }
    Ok(text)
}

/// The text of a DOCX: the runs of `word/document.xml`, a line per paragraph.
fn docx_text(bytes: &[u8]) -> Result<String, String> {
    use quick_xml::events::Event;
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("the DOCX is not a valid archive: {e}"))?;
    let mut xml = String::new();
    archive
        .by_name("word/document.xml")
        .map_err(|_| "the DOCX has no word/document.xml".to_owned())?
        .take(64 * 1024 * 1024)
        .read_to_string(&mut xml)
        .map_err(|e| format!("the DOCX cannot be read: {e}"))?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut out = String::new();
    let mut in_text = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref() == b"w:t" => in_text = true,
            Ok(Event::End(e)) => match e.name().as_ref() {
                b"w:t" => in_text = false,
                b"w:p" => out.push('\n'),
                _ => {}
            },
            Ok(Event::Empty(e)) if e.name().as_ref() == b"w:tab" => out.push('\t'),
            Ok(Event::Text(t)) if in_text => out.push_str(
                &t.xml_content()
                    .map_err(|e| format!("the DOCX text is malformed: {e}"))?,
            ),
            Ok(Event::Eof) => break,
            Err(e) => return Err(format!("the DOCX XML is malformed: {e}")),
            _ => {}
        }
    }
    Ok(out)
}

/// The text of a file, or why there is none.
pub fn extract(file_type: FileType, bytes: &[u8]) -> Result<String, String> {
    let text = match file_type {
        FileType::Pdf => pdf_text(bytes)?,
        FileType::Docx => docx_text(bytes)?,
        _ => std::str::from_utf8(bytes)
            .map_err(|_| "the file is not UTF-8 text".to_owned())?
            .to_owned(),
    };
    if file_type == FileType::Json {
        serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| format!("the file is not valid JSON: {e}"))?;
    }
    if text.trim().is_empty() {
        return Err("the file holds no text".to_owned());
    }
    // The cap every document's content has, whichever way it comes in.
    if text.len() > MAX_CONTENT_BYTES {
        return Err(format!(
            "its text is over {} MiB, the most a document holds",
            MAX_CONTENT_BYTES >> 20
        ));
    }
    Ok(text)
}

const FILE_COLUMNS: &str = "id, file_name, size_bytes, status, reason, document_id, updated_at";

/// Uploads files (multipart: one or more `files`, and optional `workspace_id`,
/// `project_ids` (comma-separated), `category`, `tags` (comma-separated)). Answers 202 at
/// once; unsupported, oversize and duplicate files are reported without being queued.
#[utoipa::path(post, path = "/api/knowledge/upload/bulk", tag = "knowledge", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data",
        description = "`files`: up to 100 files (txt, md, html, csv, json, pdf, docx), 10 MiB each, 50 MiB in all"),
    responses((status = 202, body = UploadStatus), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    mut form: Multipart,
) -> AppResult<(StatusCode, Json<UploadStatus>)> {
    state.count_job_start(auth.id).await?;
    let mut options = Options::default();
    let mut files: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut total = 0usize;
    while let Some(mut field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            if name != "files" {
                return Err(unknown_field(&name));
            }
            if files.len() == MAX_FILES {
                return Err(AppError::invalid(
                    "files",
                    format!("at most {MAX_FILES} files"),
                ));
            }
            let (bytes, oversize) = read_file(&mut field, &mut total).await?;
            files.push((file_name, bytes, oversize));
            continue;
        }
        let text = field.text().await?;
        let list = |t: &str| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        match name.as_str() {
            "workspace_id" => {
                options.workspace_id = Some(
                    text.trim()
                        .parse()
                        .map_err(|_| AppError::invalid("workspace_id", "is not a UUID"))?,
                )
            }
            "category" => options.category = text.trim().to_lowercase(),
            "tags" => options.tags = crate::projects::crud::normalize_tags(&list(&text))?,
            "project_ids" => {
                options.project_ids = list(&text)
                    .iter()
                    .map(|p| {
                        p.parse()
                            .map_err(|_| AppError::invalid("project_ids", "are not UUIDs"))
                    })
                    .collect::<AppResult<_>>()?
            }
            other => return Err(unknown_field(other)),
        }
    }
    if files.is_empty() {
        return Err(AppError::invalid("files", "send at least one file"));
    }
    let workspace_id = crate::access::target_workspace(&state, &auth, options.workspace_id).await?;
    options.workspace_id = Some(workspace_id);
    let upload_id = record_upload(&state, auth.id, workspace_id, &options, files).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_of(&state, auth.id, upload_id).await?),
    ))
}

/// Reads one file part: its bytes, or only whether it was larger than a file may be (the
/// rest is read and dropped so the request's other parts can follow).
async fn read_file(
    field: &mut axum::extract::multipart::Field<'_>,
    total: &mut usize,
) -> AppResult<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    let mut oversize = false;
    while let Some(chunk) = field.chunk().await? {
        *total += chunk.len();
        if *total > MAX_REQUEST_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        if bytes.len() + chunk.len() > MAX_FILE_BYTES {
            oversize = true;
            continue;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, oversize))
}

/// `POST /api/knowledge/documents/{id}/versions` with a file (the caller may edit `doc`):
/// multipart `file` and an optional `note`, queued as an upload of one file whose job adds
/// the document's next version.
pub async fn queue_version(
    state: &AppState,
    user: Uuid,
    doc: &super::Document,
    mut form: Multipart,
) -> AppResult<UploadStatus> {
    let mut file = None;
    let mut note = String::new();
    let mut total = 0usize;
    while let Some(mut field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        match (name.as_str(), field.file_name().map(str::to_owned)) {
            ("file", Some(_)) if file.is_some() => {
                return Err(AppError::invalid("file", "send one file"));
            }
            ("file", Some(file_name)) => {
                let (bytes, oversize) = read_file(&mut field, &mut total).await?;
                file = Some((file_name, bytes, oversize));
            }
            ("note", None) => note = field.text().await?,
            (other, _) => return Err(unknown_field(other)),
        }
    }
    let file = file.ok_or_else(|| AppError::invalid("file", "send the new version as a file"))?;
    super::versions::check_note(&note)?;
    let options = Options {
        workspace_id: Some(doc.workspace_id),
        document_id: Some(doc.id),
        note,
        ..Options::default()
    };
    let upload_id = record_upload(state, user, doc.workspace_id, &options, vec![file]).await?;
    status_of(state, user, upload_id).await
}

/// Stores an upload and its files, and queues a job for each file that can be processed.
async fn record_upload(
    state: &AppState,
    user: Uuid,
    workspace_id: Uuid,
    options: &Options,
    files: Vec<(String, Vec<u8>, bool)>,
) -> AppResult<Uuid> {
    let upload_id = new_id();
    let at = now();
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO uploads (id, workspace_id, user_id, options, created_at) VALUES ($1, $2, $3, $4, $5)",
        args![upload_id, workspace_id, user, json!(options), at],
    )
    .await?;
    let mut seen: Vec<(String, String)> = Vec::new();
    for (position, (file_name, bytes, oversize)) in files.into_iter().enumerate() {
        let digest = crate::infra::hashing::hash_bytes(&bytes);
        let (status, reason) = if oversize {
            (
                "failed",
                Some(format!(
                    "the file is larger than {} MiB",
                    MAX_FILE_BYTES / 1024 / 1024
                )),
            )
        } else if file_type_of(&file_name).is_none() {
            (
                "failed",
                Some("unsupported file type: use txt, md, html, csv or json".to_owned()),
            )
        } else if options.document_id.is_some() {
            // A new version: whether it repeats the current one is the job's to say.
            ("queued", None)
        } else if let Some((id, title)) = find_duplicate(&mut tx, workspace_id, &digest).await? {
            (
                "duplicate",
                Some(format!(
                    "the same content is already document {id} (\"{title}\")"
                )),
            )
        } else if let Some((_, first)) = seen.iter().find(|(d, _)| *d == digest) {
            (
                "duplicate",
                Some(format!("the same content as {first} in this upload")),
            )
        } else {
            ("queued", None)
        };
        seen.push((digest.clone(), file_name.clone()));
        let file_id = new_id();
        let keep = (status == "queued").then_some(bytes);
        tx.execute(
            "INSERT INTO upload_files (id, upload_id, position, file_name, size_bytes, sha256, content,
                status, reason, document_id, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)",
            args![
                file_id,
                upload_id,
                position as i64,
                file_name,
                keep.as_ref().map_or(0, Vec::len) as i64,
                digest,
                keep,
                status,
                reason,
                at
            ],
        )
        .await?;
        if status == "queued" {
            crate::infra::jobs::enqueue(&mut tx, JOB_KIND, user, json!({"file_id": file_id}))
                .await?;
        }
    }
    tx.commit().await?;
    Ok(upload_id)
}

async fn status_of(state: &AppState, user: Uuid, upload_id: Uuid) -> AppResult<UploadStatus> {
    let owner: Option<(Uuid,)> = state
        .db
        .fetch_optional(
            "SELECT user_id FROM uploads WHERE id = $1",
            args![upload_id],
        )
        .await?;
    if owner.map(|(u,)| u) != Some(user) {
        return Err(AppError::NotFound("upload"));
    }
    let files: Vec<FileStatus> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {FILE_COLUMNS} FROM upload_files WHERE upload_id = $1 ORDER BY position"
            ),
            args![upload_id],
        )
        .await?;
    Ok(UploadStatus {
        upload_id,
        done: files
            .iter()
            .all(|f| matches!(f.status.as_str(), "indexed" | "failed" | "duplicate")),
        files,
    })
}

/// The progress of an upload (its uploader only).
#[utoipa::path(get, path = "/api/knowledge/upload/bulk/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UploadStatus), (status = 404, body = crate::error::Problem)))]
async fn progress(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<UploadStatus>> {
    Ok(Json(status_of(&state, auth.id, id).await?))
}

#[derive(sqlx::FromRow)]
struct FileJob {
    upload_id: Uuid,
    user_id: Uuid,
    workspace_id: Uuid,
    options: sqlx::types::Json<Options>,
    file_name: String,
    sha256: String,
    content: Option<Vec<u8>>,
    status: String,
}

/// Records a file's status; a finished file's bytes are no longer kept.
const MARK_FILE: &str =
    "UPDATE upload_files SET status = $2, reason = $3, document_id = $4, updated_at = $5,
        content = CASE WHEN $2 IN ('indexing', 'indexed', 'failed', 'duplicate') THEN NULL ELSE content END
     WHERE id = $1";

fn mark_args(
    file_id: Uuid,
    status: &str,
    reason: Option<String>,
    document_id: Option<Uuid>,
) -> Vec<crate::db::Arg> {
    args![file_id, status, reason, document_id, now()]
}

/// Tells the uploader's notification socket how a file stands.
async fn announce(
    state: &AppState,
    job: &FileJob,
    file_id: Uuid,
    status: &str,
    reason: Option<String>,
    document_id: Option<Uuid>,
) {
    let file = UploadedFile {
        id: file_id,
        upload_id: job.upload_id,
        user_id: job.user_id,
        file_name: job.file_name.clone(),
    };
    announce_file(state, &file, status, reason, document_id).await;
}

#[derive(sqlx::FromRow)]
struct UploadedFile {
    id: Uuid,
    upload_id: Uuid,
    user_id: Uuid,
    file_name: String,
}

async fn announce_file(
    state: &AppState,
    file: &UploadedFile,
    status: &str,
    reason: Option<String>,
    document_id: Option<Uuid>,
) {
    notify(
        state,
        file.user_id,
        "upload",
        json!({"upload_id": file.upload_id, "file_id": file.id, "file_name": file.file_name,
               "status": status, "reason": reason, "document_id": document_id}),
    )
    .await;
    if matches!(status, "indexed" | "failed" | "duplicate")
        && let Err(e) = record_completion(state, file.upload_id, file.user_id).await
    {
        tracing::warn!(upload = %file.upload_id, error = %e, "could not record an upload's completion");
    }
}

/// Records `knowledge.upload.completed` once every file of the upload is processed; of
/// several workers finishing its last files at once, the one that marks it complete does.
async fn record_completion(state: &AppState, upload_id: Uuid, user_id: Uuid) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    let completed: Option<(Uuid,)> = tx
        .fetch_optional(
            "UPDATE uploads SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM upload_files WHERE upload_id = $1
                    AND status IN ('queued', 'extracting', 'indexing'))
             RETURNING workspace_id",
            args![upload_id, now()],
        )
        .await?;
    let Some((workspace_id,)) = completed else {
        return Ok(());
    };
    let (files, indexed, failed): (i64, i64, i64) = tx
        .fetch_one(
            "SELECT COUNT(*), COUNT(CASE WHEN status = 'indexed' THEN 1 END),
                COUNT(CASE WHEN status = 'failed' THEN 1 END)
             FROM upload_files WHERE upload_id = $1",
            args![upload_id],
        )
        .await?;
    eventlog::record(
        &mut tx,
        &Cause::user(user_id),
        NewEvent {
            workspace_id,
            project_id: None,
            kind: "knowledge.upload.completed",
            subject: Subject::new("upload", upload_id, None),
            data: json!({"upload_id": upload_id, "files": files, "indexed": indexed, "failed": failed}),
        },
    )
    .await?;
    state.events.commit(tx).await
}

/// A large document's background indexing ended: the files it was made from are indexed
/// (or failed, with the reason).
pub async fn document_indexed(
    state: &AppState,
    document_id: Uuid,
    outcome: Result<(), String>,
) -> AppResult<()> {
    let files: Vec<UploadedFile> = state
        .db
        .fetch_all(
            "SELECT f.id, f.upload_id, u.user_id, f.file_name FROM upload_files f
             JOIN uploads u ON u.id = f.upload_id
             WHERE f.document_id = $1 AND f.status = 'indexing'",
            args![document_id],
        )
        .await?;
    let (status, reason) = match outcome {
        Ok(()) => ("indexed", None),
        Err(e) => (
            "failed",
            Some(format!("could not be indexed: {}", unexpected(e))),
        ),
    };
    for file in files {
        state
            .db
            .execute(
                MARK_FILE,
                mark_args(file.id, status, reason.clone(), Some(document_id)),
            )
            .await?;
        announce_file(state, &file, status, reason.clone(), Some(document_id)).await;
    }
    Ok(())
}

async fn set_status(
    state: &AppState,
    job: &FileJob,
    file_id: Uuid,
    status: &str,
    reason: Option<String>,
    document_id: Option<Uuid>,
) -> Result<(), String> {
    state
        .db
        .execute(
            MARK_FILE,
            mark_args(file_id, status, reason.clone(), document_id),
        )
        .await
        .map_err(unexpected)?;
    announce(state, job, file_id, status, reason, document_id).await;
    Ok(())
}

/// What a file's reason says of an unexpected failure (a storage error): the details go to
/// the log (the job queue logs the error too), never to the uploader.
fn unexpected(error: impl std::fmt::Display) -> String {
    tracing::error!(%error, "upload job: unexpected failure");
    "an unexpected server error (logged)".to_owned()
}

fn file_id_of(payload: &serde_json::Value) -> Result<Uuid, String> {
    payload["file_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "the job names no file".to_owned())
}

async fn load(state: &AppState, file_id: Uuid) -> Result<FileJob, String> {
    state
        .db
        .fetch_optional(
            "SELECT f.upload_id, u.user_id, u.workspace_id, u.options, f.file_name, f.sha256, f.content, f.status
             FROM upload_files f JOIN uploads u ON u.id = f.upload_id WHERE f.id = $1",
            args![file_id],
        )
        .await
        .map_err(unexpected)?
        .ok_or_else(|| "the file is gone".to_owned())
}

fn finished(status: &str) -> bool {
    matches!(status, "indexed" | "failed" | "duplicate")
}

/// The job: extracts one file's text and makes it a document.
async fn process(state: &AppState, payload: &serde_json::Value) -> Result<(), String> {
    let file_id = file_id_of(payload)?;
    let job = load(state, file_id).await?;
    // Already finished by an earlier attempt that died before recording the job's end, or
    // stored as a document whose background indexing finishes it.
    if finished(&job.status) || job.status == "indexing" {
        return Ok(());
    }
    set_status(state, &job, file_id, "extracting", None, None).await?;
    let bytes = job.content.clone().unwrap_or_default();
    let file_type = file_type_of(&job.file_name).ok_or("unsupported file type")?;
    // Parsing a PDF or DOCX is CPU work: it runs on a blocking thread, not an async worker.
    let extracted = tokio::task::spawn_blocking(move || extract(file_type, &bytes))
        .await
        .map_err(|e| format!("extraction stopped: {e}"))?;
    let text = match extracted {
        Ok(t) => t,
        Err(reason) => return set_status(state, &job, file_id, "failed", Some(reason), None).await,
    };
    if let Some(document_id) = job.options.0.document_id {
        return add_version(state, &job, file_id, document_id, &text).await;
    }
    let title = job
        .file_name
        .rsplit_once('.')
        .map_or(job.file_name.as_str(), |(stem, _)| stem)
        .chars()
        .take(300)
        .collect::<String>();
    let record = NewRecord {
        workspace_id: job.workspace_id,
        author: job.user_id,
        title,
        file_type,
        category: job.options.0.category.clone(),
        tags: job.options.0.tags.clone(),
        project_ids: job.options.0.project_ids.clone(),
        content: text,
        sha256: job.sha256.clone(),
    };
    let mut tx = state.db.begin().await.map_err(unexpected)?;
    let made = insert(&mut tx, record).await;
    conclude(state, &job, file_id, tx, made).await
}

/// Ends a file's job: the file's status commits with the document it made (a crash in
/// between would make the retry find the document and report the file as its own duplicate),
/// or says why it made none.
async fn conclude(
    state: &AppState,
    job: &FileJob,
    file_id: Uuid,
    mut tx: Tx,
    made: AppResult<(Uuid, Indexing)>,
) -> Result<(), String> {
    let (document_id, indexing) = match made {
        Ok(made) => made,
        Err(e) => {
            // The transaction ends before the file's status is written on another
            // connection: on SQLite it holds the one write lock.
            drop(tx);
            return match e {
                AppError::Conflict(why) => {
                    set_status(state, job, file_id, "duplicate", Some(why), None).await
                }
                AppError::Unprocessable { .. }
                | AppError::Forbidden(_)
                | AppError::NotFound(_)
                | AppError::PayloadTooLarge => {
                    set_status(state, job, file_id, "failed", Some(e.to_string()), None).await
                }
                other => Err(unexpected(other)),
            };
        }
    };
    let status = match indexing {
        Indexing::Done => "indexed",
        Indexing::Queued => "indexing",
    };
    tx.execute(
        MARK_FILE,
        mark_args(file_id, status, None, Some(document_id)),
    )
    .await
    .map_err(unexpected)?;
    state.events.commit(tx).await.map_err(unexpected)?;
    announce(state, job, file_id, status, None, Some(document_id)).await;
    Ok(())
}

/// The job's end for a new version: the document's next version, made as the uploader if
/// they may still edit it.
async fn add_version(
    state: &AppState,
    job: &FileJob,
    file_id: Uuid,
    document_id: Uuid,
    text: &str,
) -> Result<(), String> {
    let mut tx = state.db.begin().await.map_err(unexpected)?;
    let added = async {
        let doc = super::load(&mut tx, job.user_id, document_id).await?;
        doc.require_editor(job.user_id)?;
        super::versions::add(&mut tx, job.user_id, &doc, text, &job.options.0.note)
            .await
            .map(|(_, indexing)| (document_id, indexing))
    }
    .await;
    conclude(state, job, file_id, tx, added).await
}

/// The job failed for good (it kept erroring): the file fails with the last error, so that
/// the upload still ends.
async fn give_up(state: &AppState, payload: &serde_json::Value, error: &str) -> Result<(), String> {
    let file_id = file_id_of(payload)?;
    let job = load(state, file_id).await?;
    if finished(&job.status) {
        return Ok(());
    }
    let reason = format!("could not be processed: {error}");
    set_status(state, &job, file_id, "failed", Some(reason), None).await
}

/// Runs the upload jobs: each extracts and indexes one file.
pub struct UploadJobs(pub AppState);

impl JobHandler for UploadJobs {
    fn run(&self, payload: serde_json::Value) -> JobFuture {
        let state = self.0.clone();
        Box::pin(async move { process(&state, &payload).await })
    }

    fn give_up(&self, payload: serde_json::Value, error: String) -> JobFuture {
        let state = self.0.clone();
        Box::pin(async move { give_up(&state, &payload, &error).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_from_names_and_extraction_errors() {
        assert_eq!(file_type_of("FAQ.MD"), Some(FileType::Md));
        assert_eq!(file_type_of("notes"), None);
        assert_eq!(file_type_of("tool.exe"), None);
        assert!(
            extract(FileType::Json, b"{broken")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            extract(FileType::Txt, &[0xff, 0xfe, 0x00])
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(extract(FileType::Txt, b"   ").is_err());
    }
}
