//! `POST /api/knowledge/auto-tag`: runs the workspace's enabled auto-tagger plugins on a text or
//! a document and merges their suggestions.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::target_workspace;
use crate::args;
use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, AppResult};
use crate::plugins::{Call, Kind, Output, enabled_of_kind, invoke};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(auto_tag))
}

/// Text to tag, or a document (its current version) to tag.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoTagRequest {
    pub document_id: Option<Uuid>,
    pub title: Option<String>,
    pub text: Option<String>,
    /// For a text: the workspace whose auto-taggers run (default: the caller's personal one).
    pub workspace_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestion {
    pub name: String,
    /// The highest confidence any tagger gave it, 0–1.
    pub confidence: f32,
    /// The plugins that suggested it.
    pub plugins: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaggerRun {
    pub plugin_id: String,
    /// `ok` or `error`.
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AutoTagResult {
    pub document_id: Option<Uuid>,
    /// Best first.
    pub tags: Vec<Suggestion>,
    pub categories: Vec<Suggestion>,
    /// Each auto-tagger that ran; one failing does not stop the others.
    pub taggers: Vec<TaggerRun>,
}

const MAX_TEXT_CHARS: usize = 200_000;

/// Suggests tags and categories with confidences from the workspace's enabled auto-taggers.
#[utoipa::path(post, path = "/api/knowledge/auto-tag", tag = "knowledge", security(("bearer" = [])),
    request_body = AutoTagRequest,
    responses((status = 200, body = AutoTagResult), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn auto_tag(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<AutoTagRequest>,
) -> AppResult<Json<AutoTagResult>> {
    let (workspace_id, title, text) = match (req.document_id, req.text) {
        (Some(id), None) => {
            let doc = super::load(&state.db, auth.id, id).await?;
            let (content,): (String,) = state
                .db
                .fetch_one(
                    "SELECT content FROM document_versions WHERE document_id = $1 AND version = $2",
                    args![doc.id, doc.current_version],
                )
                .await?;
            (doc.workspace_id, doc.title, content)
        }
        (None, Some(text)) if !text.trim().is_empty() => {
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(AppError::invalid(
                    "text",
                    format!("must hold at most {MAX_TEXT_CHARS} characters"),
                ));
            }
            let workspace = target_workspace(&state, &auth, req.workspace_id).await?;
            (workspace, req.title.unwrap_or_default(), text)
        }
        _ => {
            return Err(AppError::invalid(
                "text",
                "give either a non-empty `text` or a `document_id`",
            ));
        }
    };
    let taggers = enabled_of_kind(&state.db, workspace_id, Kind::AutoTagger).await?;
    if taggers.is_empty() {
        return Err(AppError::Conflict(
            "no auto-tagger is enabled in this workspace: install one from \
             /api/integrations/marketplace (e.g. keyword-tagger)"
                .into(),
        ));
    }
    let mut tags: BTreeMap<String, Suggestion> = BTreeMap::new();
    let mut categories: BTreeMap<String, Suggestion> = BTreeMap::new();
    let mut runs = Vec::new();
    for tagger in &taggers {
        let call = Call::Suggest {
            title: title.clone(),
            text: text.clone(),
        };
        match invoke(&state, tagger, "auto-tag", call).await? {
            Ok(outcome) => {
                if let Output::Tagging(t) = outcome.output {
                    merge(&mut tags, t.tags, &tagger.plugin_id);
                    merge(&mut categories, t.categories, &tagger.plugin_id);
                }
                runs.push(TaggerRun {
                    plugin_id: tagger.plugin_id.clone(),
                    status: "ok".into(),
                    error: None,
                });
            }
            Err(e) => runs.push(TaggerRun {
                plugin_id: tagger.plugin_id.clone(),
                status: "error".into(),
                error: Some(e.to_string()),
            }),
        }
    }
    Ok(Json(AutoTagResult {
        document_id: req.document_id,
        tags: ranked(tags),
        categories: ranked(categories),
        taggers: runs,
    }))
}

fn merge(
    into: &mut BTreeMap<String, Suggestion>,
    scored: Vec<crate::infra::sandbox::Scored>,
    plugin_id: &str,
) {
    for s in scored {
        let name = s.name.trim().to_lowercase();
        if name.is_empty() || !s.confidence.is_finite() {
            continue;
        }
        let confidence = s.confidence.clamp(0.0, 1.0);
        let entry = into.entry(name.clone()).or_insert(Suggestion {
            name,
            confidence,
            plugins: Vec::new(),
        });
        entry.confidence = entry.confidence.max(confidence);
        if !entry.plugins.iter().any(|p| p == plugin_id) {
            entry.plugins.push(plugin_id.to_owned());
        }
    }
}

fn ranked(map: BTreeMap<String, Suggestion>) -> Vec<Suggestion> {
    let mut list: Vec<Suggestion> = map.into_values().collect();
    list.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then_with(|| a.name.cmp(&b.name))
    });
    list.truncate(50);
    list
}
