//! `GET /api/team/activity-feed`: what happened in the caller's workspaces (and, for a project
//! shared with them, in that project), newest first, read from the event log; and the same
//! items live, as `activity` events on each reader's notification socket (the `ActivityFeed`
//! consumer). Chat message content stays out of the feed.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::target_workspace;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Cursor, Db, Filter, Page, PageQuery, contains_pattern, now};
use crate::error::{AppError, AppQuery, AppResult};
use crate::events::{Named, actor_names, actor_of, summary};
use crate::infra::eventlog::{Consumer, EVENT_COLUMNS, Event, Handled};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(activity_feed))
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityItem {
    pub id: Uuid,
    /// The event type (`GET /api/events/types`).
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub workspace_id: Uuid,
    pub project_id: Option<Uuid>,
    pub actor: Named,
    pub subject: Named,
    /// One readable sentence.
    pub summary: String,
    /// The event's data; for chat messages, without their content.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// The feed's items for `events`, their actors named.
async fn items(db: &Db, events: Vec<Event>) -> AppResult<Vec<ActivityItem>> {
    let names = actor_names(db, &events).await?;
    Ok(events.into_iter().map(|e| item(e, &names)).collect())
}

fn item(event: Event, names: &HashMap<(String, String), String>) -> ActivityItem {
    let actor = actor_of(&event, names);
    let summary = summary(&event, &actor);
    let mut data = event.data.0;
    if event.kind.starts_with("chat.message.")
        && let Some(fields) = data.as_object_mut()
    {
        fields.remove("content");
    }
    ActivityItem {
        id: event.id,
        kind: event.kind,
        occurred_at: event.occurred_at,
        workspace_id: event.workspace_id,
        project_id: event.project_id,
        subject: Named {
            kind: event.subject_type,
            id: Some(event.subject_id),
            name: event.subject_name,
        },
        actor,
        summary,
        data,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// One workspace the caller belongs to.
    pub workspace_id: Option<Uuid>,
    /// One agent (project).
    pub project_id: Option<Uuid>,
    /// Who did it: a user, agent, rule or plugin id.
    pub actor_id: Option<String>,
    /// A type, or a prefix of types (`chat.` or `chat.*`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only what happened at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Where the caller's visible events come from: whole workspaces, and projects shared with
/// them outside those.
async fn sources(
    state: &AppState,
    auth: &AuthUser,
    q: &FeedQuery,
) -> AppResult<Vec<(&'static str, Uuid)>> {
    if let Some(ws) = q.workspace_id {
        target_workspace(state, auth, Some(ws)).await?;
        return Ok(vec![("workspace_id", ws)]);
    }
    let workspaces: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT workspace_id FROM workspace_members WHERE user_id = $1",
            args![auth.id],
        )
        .await?;
    let shared: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT s.project_id FROM project_shares s JOIN projects p ON p.id = s.project_id
             WHERE s.user_id = $1 AND (s.expires_at IS NULL OR s.expires_at > $2)
                AND p.workspace_id NOT IN (SELECT workspace_id FROM workspace_members WHERE user_id = $1)",
            args![auth.id, now()],
        )
        .await?;
    Ok(workspaces
        .into_iter()
        .map(|(w,)| ("workspace_id", w))
        .chain(shared.into_iter().map(|(p,)| ("project_id", p)))
        .collect())
}

/// The events the caller may see, newest first: each source's page read through its
/// `(workspace_id, id)` or `(project_id, id)` index, then merged, so a page costs
/// O(sources × page) whatever the size of the log.
#[utoipa::path(get, path = "/api/team/activity-feed", tag = "team", security(("bearer" = [])),
    params(FeedQuery),
    responses((status = 200, body = Page<ActivityItem>), (status = 400, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn activity_feed(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<FeedQuery>,
) -> AppResult<Json<Page<ActivityItem>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = page.limit()?;
    let after = page.cursor("")?.map(|c| c.id);
    if q.actor_id.as_ref().is_some_and(|a| a.len() > 100) {
        return Err(AppError::invalid(
            "actor_id",
            "must be at most 100 characters",
        ));
    }
    let mut events: Vec<Event> = Vec::new();
    for (column, id) in sources(&state, &auth, &q).await? {
        let mut filter = Filter::after(args![id]);
        if let Some(project) = q.project_id {
            filter.and(" AND project_id = {}", project);
        }
        if let Some(actor) = &q.actor_id {
            filter.and(" AND actor_id = {}", actor.clone());
        }
        if let Some(kind) = q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            match kind
                .strip_suffix('*')
                .or_else(|| kind.ends_with('.').then_some(kind))
            {
                Some(prefix) => {
                    let pattern = contains_pattern(prefix);
                    filter.and(" AND type LIKE {} ESCAPE '\\'", pattern[1..].to_owned());
                }
                None => filter.and(" AND type = {}", kind.to_owned()),
            }
        }
        if let Some(since) = q.since {
            filter.and(" AND occurred_at >= {}", since);
        }
        if let Some(after) = after {
            filter.and(" AND id < {}", after);
        }
        let rows: Vec<Event> = state
            .db
            .fetch_all(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE {column} = $1{}
                     ORDER BY id DESC LIMIT {}",
                    filter.sql,
                    limit + 1
                ),
                filter.binds,
            )
            .await?;
        events.extend(rows);
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.id));
    events.dedup_by_key(|e| e.id);
    events.truncate(limit as usize + 1);
    let page = Page::from_rows(events, limit, |e| Cursor::by_id(e.id));
    Ok(Json(Page {
        items: items(&state.db, page.items).await?,
        next_cursor: page.next_cursor,
    }))
}

/// The live feed: each event, as the feed shows it, to the notification sockets of everyone
/// who may see it (the workspace's members, and those its project is shared with).
pub struct ActivityFeed(pub AppState);

impl Consumer for ActivityFeed {
    fn name(&self) -> &'static str {
        "activity_feed"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a> {
        Box::pin(async move { deliver(&self.0, event).await.map_err(|e| e.to_string()) })
    }
}

async fn deliver(state: &AppState, event: &Event) -> AppResult<()> {
    let readers: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT user_id FROM workspace_members WHERE workspace_id = $1
             UNION
             SELECT user_id FROM project_shares WHERE project_id = $2
                AND (expires_at IS NULL OR expires_at > $3)",
            args![event.workspace_id, event.project_id, now()],
        )
        .await?;
    if readers.is_empty() {
        return Ok(());
    }
    let item = items(&state.db, vec![event.clone()]).await?.remove(0);
    let message = json!({"type": "activity", "item": item});
    for (user,) in readers {
        state.bus.publish(&format!("user:{user}"), &message).await;
    }
    Ok(())
}
