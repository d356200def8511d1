//! `GET /api/knowledge/analytics` (seed §4): how much knowledge there is, what answers cite,
//! and the questions it does not answer yet.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::{Role, require_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Db};
use crate::error::{AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(analytics))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KnowledgeQuery {
    /// One workspace (default: all the caller's).
    pub workspace_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Referenced {
    pub document_id: Uuid,
    pub title: String,
    /// Agent answers that cited the document.
    pub reference_count: i64,
    pub last_referenced: Option<DateTime<Utc>>,
    /// Mean rating of the answers that cited it, over 5 (0–1); null without ratings.
    pub effectiveness_score: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Gap {
    /// The question as first asked.
    pub topic: String,
    /// Its content words: questions sharing them are grouped.
    pub question_key: String,
    pub occurrences: i64,
    /// Mean share of the question's words the best passage held (0–1).
    pub confidence: f64,
    /// The closest existing documents, or a title for the document to write.
    pub suggested_documents: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KnowledgeAnalytics {
    pub total_documents: i64,
    pub most_referenced: Vec<Referenced>,
    pub knowledge_gaps: Vec<Gap>,
}

#[derive(sqlx::FromRow)]
struct GapRow {
    workspace_id: Uuid,
    question_key: String,
    example: String,
    occurrences: i64,
    confidence_sum: f64,
}

/// Knowledge analytics of the caller's workspaces (or one of them).
#[utoipa::path(get, path = "/api/knowledge/analytics", tag = "knowledge", security(("bearer" = [])),
    params(KnowledgeQuery),
    responses((status = 200, body = KnowledgeAnalytics), (status = 404, body = crate::error::Problem)))]
async fn analytics(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<KnowledgeQuery>,
) -> AppResult<Json<KnowledgeAnalytics>> {
    if let Some(ws) = q.workspace_id {
        require_role(&state.db, ws, auth.id, Role::Member).await?;
    }
    Ok(Json(measure(&state.db, auth.id, q.workspace_id).await?))
}

/// The knowledge figures of one workspace (already permission-checked) or of every workspace
/// the caller is a member of.
pub async fn measure(
    db: &Db,
    caller: Uuid,
    workspace: Option<Uuid>,
) -> AppResult<KnowledgeAnalytics> {
    let mut binds: Vec<Arg> = args![caller];
    let scope = match workspace {
        Some(ws) => {
            binds.push(ws.into());
            "workspace_id = $2".to_owned()
        }
        None => "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = $1)"
            .to_owned(),
    };
    // $1 is bound in both cases, so every query takes the same binds.
    let scope = format!("{scope} AND $1 IS NOT NULL");
    let (total_documents,): (i64,) = db
        .fetch_one(
            &format!("SELECT COUNT(*) FROM documents WHERE {scope}"),
            binds.clone(),
        )
        .await?;
    let most_referenced: Vec<Referenced> = db
        .fetch_all(
            &format!(
                "SELECT k.document_id, d.title, k.reference_count, k.last_referenced, k.effectiveness_score
                 FROM knowledge_analytics k JOIN documents d ON d.id = k.document_id
                 WHERE k.{} ORDER BY k.reference_count DESC, d.title LIMIT 10",
                scope.replace(" AND workspace_id", " AND k.workspace_id")
            ),
            binds.clone(),
        )
        .await?;
    let gaps: Vec<GapRow> = db
        .fetch_all(
            &format!(
                "SELECT workspace_id, question_key, example, occurrences, confidence_sum
                 FROM knowledge_gaps WHERE {scope} ORDER BY occurrences DESC, question_key LIMIT 10"
            ),
            binds,
        )
        .await?;
    let mut knowledge_gaps = Vec::with_capacity(gaps.len());
    for g in gaps {
        let closest: Vec<(String,)> = db
            .fetch_all(
                "SELECT title FROM documents WHERE workspace_id = $1 ORDER BY id DESC LIMIT 200",
                args![g.workspace_id],
            )
            .await?;
        let terms: Vec<&str> = g.question_key.split(' ').collect();
        let mut suggested: Vec<(usize, String)> = closest
            .into_iter()
            .map(|(title,)| {
                let title_terms = crate::analytics::text::content_terms(&title);
                (
                    terms
                        .iter()
                        .filter(|t| title_terms.iter().any(|x| x == *t))
                        .count(),
                    title,
                )
            })
            .filter(|(shared, _)| *shared > 0)
            .collect();
        suggested.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut suggested_documents: Vec<String> =
            suggested.into_iter().take(3).map(|(_, t)| t).collect();
        if suggested_documents.is_empty() {
            let mut title: String = g.question_key.clone();
            if let Some(first) = title.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            suggested_documents.push(format!("{title} guide"));
        }
        knowledge_gaps.push(Gap {
            topic: g.example,
            question_key: g.question_key,
            occurrences: g.occurrences,
            confidence: if g.occurrences > 0 {
                g.confidence_sum / g.occurrences as f64
            } else {
                0.0
            },
            suggested_documents,
        });
    }
    Ok(KnowledgeAnalytics {
        total_documents,
        most_referenced,
        knowledge_gaps,
    })
}
