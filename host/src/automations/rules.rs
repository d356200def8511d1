//! `POST/GET /api/automations/rules`, `GET/PUT/DELETE /api/automations/rules/{id}`: workspace
//! admins write rules, members read them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::actions::{self, Action};
use super::trigger::{Checked, Trigger};
use crate::access::{Role, projects_of_workspace, require_role, target_workspace};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Db, Filter, Page, PageQuery, Tx, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::precondition::{IfMatch, Versioned, stale};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_rule, list_rules))
        .routes(routes!(get_rule, replace_rule, delete_rule))
}

const MAX_COOLDOWN_SECONDS: i64 = 30 * 24 * 3600;

/// A rule as written (`POST`, and `PUT` replacing it whole).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The workspace (default: the caller's personal one); the caller must be its owner or
    /// an admin. Fixed once the rule exists.
    pub workspace_id: Option<Uuid>,
    pub description: Option<String>,
    /// Only events of these agents (projects of the workspace); left out, every agent's.
    pub project_ids: Option<Vec<Uuid>>,
    /// Default true.
    pub enabled: Option<bool>,
    pub trigger: Trigger,
    /// 1–10 actions, run in order.
    pub actions: Vec<Action>,
    /// After firing for a subject (a chat session), the rule stays quiet for it this long.
    pub cooldown_seconds: Option<i64>,
    /// On `PUT`: the version this change was based on (409 when the rule changed since).
    pub version: Option<i64>,
}

/// An automation rule.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Rule {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub project_ids: Option<SqlJson<Vec<Uuid>>>,
    pub enabled: bool,
    #[sqlx(skip)]
    pub trigger: Option<Trigger>,
    #[serde(skip)]
    pub trigger_type: String,
    #[serde(skip)]
    pub event_type: String,
    #[serde(skip)]
    pub conditions: SqlJson<serde_json::Value>,
    #[schema(value_type = Vec<Action>)]
    pub actions: SqlJson<Vec<Action>>,
    pub cooldown_seconds: Option<i64>,
    pub version: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const RULE_COLUMNS: &str = "r.id, r.workspace_id, r.name, r.description, r.project_ids,
    r.enabled, r.trigger_type, r.event_type, r.conditions, r.actions, r.cooldown_seconds,
    r.version, r.created_by, r.created_at, r.updated_at";

impl Rule {
    /// The trigger as written.
    pub fn written_trigger(&self) -> Trigger {
        Trigger {
            kind: self.trigger_type.clone(),
            event_type: (self.trigger_type == "event").then(|| self.event_type.clone()),
            conditions: self.conditions.0.clone(),
        }
    }

    /// The rule as the API shows it.
    fn view(mut self) -> Rule {
        self.trigger = Some(self.written_trigger());
        self
    }
}

/// A rule body checked: trigger, actions, names and bounds.
struct Valid {
    name: String,
    description: Option<String>,
    project_ids: Option<Vec<Uuid>>,
    trigger: Checked,
    cooldown_seconds: Option<i64>,
}

async fn check(db: &Db, workspace_id: Uuid, body: &RuleBody) -> AppResult<Valid> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid("name", "must be 1 to 200 characters"));
    }
    let description = body
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return Err(AppError::invalid(
            "description",
            "must be at most 2000 characters",
        ));
    }
    let trigger = body.trigger.check()?;
    if let Some(ids) = &body.project_ids {
        projects_of_workspace(db, workspace_id, "project_ids", ids).await?;
    }
    if body
        .cooldown_seconds
        .is_some_and(|c| !(1..=MAX_COOLDOWN_SECONDS).contains(&c))
    {
        return Err(AppError::invalid(
            "cooldown_seconds",
            format!("must be 1 to {MAX_COOLDOWN_SECONDS}"),
        ));
    }
    actions::validate(db, workspace_id, &body.actions).await?;
    Ok(Valid {
        name: name.to_owned(),
        description,
        project_ids: body.project_ids.clone().filter(|ids| !ids.is_empty()),
        trigger,
        cooldown_seconds: body.cooldown_seconds,
    })
}

/// Writes the keyword index of a rule (the first word of each keyword).
async fn index_keywords(tx: &mut Tx, rule: Uuid, workspace_id: Uuid, t: &Checked) -> AppResult<()> {
    tx.execute(
        "DELETE FROM automation_rule_keywords WHERE rule_id = $1",
        args![rule],
    )
    .await?;
    for word in t.index_words() {
        tx.execute(
            "INSERT INTO automation_rule_keywords (rule_id, workspace_id, word) VALUES ($1, $2, $3)",
            args![rule, workspace_id, word],
        )
        .await?;
    }
    Ok(())
}

async fn load(db: &Db, id: Uuid) -> AppResult<Rule> {
    db.fetch_optional(
        &format!("SELECT {RULE_COLUMNS} FROM automation_rules r WHERE r.id = $1"),
        args![id],
    )
    .await?
    .ok_or(AppError::NotFound("automation rule"))
}

/// A rule the caller may see (a member of its workspace) with their role; 404 otherwise.
pub async fn load_visible(db: &Db, caller: Uuid, id: Uuid) -> AppResult<(Rule, Role)> {
    let rule = load(db, id).await?;
    let role = require_role(db, rule.workspace_id, caller, Role::Member)
        .await
        .map_err(|_| AppError::NotFound("automation rule"))?;
    Ok((rule, role))
}

/// A rule the caller may change (an owner or admin of its workspace).
async fn load_writable(db: &Db, caller: Uuid, id: Uuid) -> AppResult<Rule> {
    let (rule, role) = load_visible(db, caller, id).await?;
    if role < Role::Admin {
        return Err(AppError::forbidden(
            "automation rules are changed by the workspace's owner and admins",
        ));
    }
    Ok(rule)
}

/// Creates a rule (workspace owners and admins).
#[utoipa::path(post, path = "/api/automations/rules", tag = "automations", security(("bearer" = [])),
    request_body = RuleBody,
    responses((status = 201, body = Rule), (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn create_rule(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<RuleBody>,
) -> AppResult<(StatusCode, Json<Rule>)> {
    let workspace_id = target_workspace(&state, &auth, body.workspace_id).await?;
    require_role(&state.db, workspace_id, auth.id, Role::Admin).await?;
    if body.version.is_some() {
        return Err(AppError::invalid("version", "is only for PUT"));
    }
    let rule = check(&state.db, workspace_id, &body).await?;
    let id = new_id();
    let at = now();
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO automation_rules (id, workspace_id, name, description, project_ids, enabled,
            trigger_type, event_type, conditions, actions, cooldown_seconds, version, created_by,
            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, $13)",
        args![
            id,
            workspace_id,
            rule.name.clone(),
            rule.description,
            rule.project_ids.as_ref().map(|p| json!(p)),
            body.enabled.unwrap_or(true),
            body.trigger.kind.clone(),
            rule.trigger.event_type(),
            body.trigger.conditions.clone(),
            json!(body.actions),
            rule.cooldown_seconds,
            auth.id,
            at
        ],
    )
    .await?;
    index_keywords(&mut tx, id, workspace_id, &rule.trigger).await?;
    crate::team::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "automation.rule.create",
        "automation_rule",
        Some(id.to_string()),
        json!({"name": rule.name}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(load(&state.db, id).await?.view())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RuleListQuery {
    /// Only this workspace's rules (the caller must belong to it); left out, every
    /// workspace the caller belongs to.
    pub workspace_id: Option<Uuid>,
    /// Only rules that apply to this agent (those for every agent included).
    pub project_id: Option<Uuid>,
    pub enabled: Option<bool>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The rules of the caller's workspaces, newest first.
#[utoipa::path(get, path = "/api/automations/rules", tag = "automations", security(("bearer" = [])),
    params(RuleListQuery),
    responses((status = 200, body = Page<Rule>), (status = 400, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn list_rules(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<RuleListQuery>,
) -> AppResult<Json<Page<Rule>>> {
    let mut filter = Filter::after(args![auth.id]);
    if let Some(ws) = q.workspace_id {
        target_workspace(&state, &auth, Some(ws)).await?;
        filter.and(" AND r.workspace_id = {}", ws);
    }
    if let Some(enabled) = q.enabled {
        filter.and(" AND r.enabled = {}", enabled);
    }
    if let Some(project) = q.project_id {
        let p = filter.bind(project.to_string());
        filter.sql += &if state.db.is_postgres() {
            format!(" AND (r.project_ids IS NULL OR r.project_ids ? {p})")
        } else {
            format!(
                " AND (r.project_ids IS NULL OR EXISTS (SELECT 1 FROM json_each(r.project_ids) WHERE value = {p}))"
            )
        };
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    // Driven by the caller's memberships, then each workspace's rules by its index.
    let rules: Page<Rule> = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {RULE_COLUMNS} FROM workspace_members m
                 JOIN automation_rules r ON r.workspace_id = m.workspace_id
                 WHERE m.user_id = $1{}",
                filter.sql
            ),
            "r.id",
            filter.binds,
            &page,
            |r: &Rule| r.id,
        )
        .await?;
    Ok(Json(rules.map(Rule::view)))
}

/// One rule (members of its workspace).
#[utoipa::path(get, path = "/api/automations/rules/{id}", tag = "automations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Rule, headers(("ETag" = String, description = "The rule's version, for If-Match"))),
        (status = 404, body = crate::error::Problem)))]
async fn get_rule(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Versioned<Json<Rule>>> {
    let rule = load_visible(&state.db, auth.id, id).await?.0;
    Ok(Versioned(rule.version, Json(rule.view())))
}

/// Replaces a rule (workspace owners and admins); its version goes up by one. A `version` in
/// the body other than the current one answers 409; an `If-Match` naming another version,
/// 412 with the current rule.
#[utoipa::path(put, path = "/api/automations/rules/{id}", tag = "automations", security(("bearer" = [])),
    params(("id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag this write is based on")),
    request_body = RuleBody,
    responses((status = 200, body = Rule, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn replace_rule(
    State(state): State<AppState>,
    auth: AuthUser,
    if_match: IfMatch,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<RuleBody>,
) -> AppResult<Versioned<Json<Rule>>> {
    let current = load_writable(&state.db, auth.id, id).await?;
    if body
        .workspace_id
        .is_some_and(|ws| ws != current.workspace_id)
    {
        return Err(AppError::invalid(
            "workspace_id",
            "a rule stays in its workspace",
        ));
    }
    let rule = check(&state.db, current.workspace_id, &body).await?;
    // Preconditions are weighed once the request is known to be valid (RFC 9110 13.2.1).
    if_match.check("rule", current.version, || current.clone().view())?;
    let base = body.version.unwrap_or(current.version);
    let mut tx = state.db.begin().await?;
    let written = tx
        .execute(
            "UPDATE automation_rules SET name = $2, description = $3, project_ids = $4,
                enabled = $5, trigger_type = $6, event_type = $7, conditions = $8, actions = $9,
                cooldown_seconds = $10, version = version + 1, updated_at = $11
             WHERE id = $1 AND version = $12",
            args![
                id,
                rule.name.clone(),
                rule.description,
                rule.project_ids.as_ref().map(|p| json!(p)),
                body.enabled.unwrap_or(true),
                body.trigger.kind.clone(),
                rule.trigger.event_type(),
                body.trigger.conditions.clone(),
                json!(body.actions),
                rule.cooldown_seconds,
                now(),
                base
            ],
        )
        .await?;
    if written == 0 {
        let now = load(&state.db, id).await?;
        return Err(stale(
            if_match.lost_race(),
            format!("the rule changed since version {base}; read it again"),
            now.version,
            now.view(),
            None,
        ));
    }
    index_keywords(&mut tx, id, current.workspace_id, &rule.trigger).await?;
    crate::team::audit(
        &mut tx,
        current.workspace_id,
        auth.id,
        "automation.rule.update",
        "automation_rule",
        Some(id.to_string()),
        json!({"name": rule.name, "version": base + 1}),
    )
    .await?;
    tx.commit().await?;
    let saved = load(&state.db, id).await?;
    Ok(Versioned(saved.version, Json(saved.view())))
}

/// Deletes a rule and its runs (workspace owners and admins).
#[utoipa::path(delete, path = "/api/automations/rules/{id}", tag = "automations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn delete_rule(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let rule = load_writable(&state.db, auth.id, id).await?;
    let mut tx = state.db.begin().await?;
    tx.execute("DELETE FROM automation_rules WHERE id = $1", args![id])
        .await?;
    crate::team::audit(
        &mut tx,
        rule.workspace_id,
        auth.id,
        "automation.rule.delete",
        "automation_rule",
        Some(id.to_string()),
        json!({"name": rule.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
