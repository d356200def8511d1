//! What the host does with the events a plugin emits, always inside the plugin's workspace:
//! `chat.escalate` and `chat.priority` change a session of that workspace, `notification`
//! reaches its members (all, or those it names by id or role); other kinds are published on the workspace's topic.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::access::Role;
use crate::args;
use crate::chat::{Priority, SessionChange, SessionStatus, change_in_workspace};
use crate::infra::eventlog::Cause;
use crate::infra::sandbox::Event;
use crate::realtime::notify;
use crate::state::AppState;

fn uuid_of(payload: &Value, key: &str) -> Result<Uuid, String> {
    payload[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("`{key}` is not an id"))
}

/// Applies `events` from a plugin installed in `workspace_id`, on behalf of `cause`; the first
/// one refused stops the rest and says why.
pub async fn apply(
    state: &AppState,
    cause: &Cause,
    workspace_id: Uuid,
    plugin_id: &str,
    events: &[Event],
) -> Result<(), String> {
    for event in events {
        let payload: Value = serde_json::from_str(&event.payload).map_err(|e| e.to_string())?;
        let refused = |why: String| {
            format!(
                "the host refused the plugin's `{}` event: {why}",
                event.kind
            )
        };
        match event.kind.as_str() {
            "chat.escalate" | "chat.priority" => {
                let session = uuid_of(&payload, "session_id").map_err(refused)?;
                let reason = payload["reason"].as_str().unwrap_or_default();
                let change = if event.kind == "chat.escalate" {
                    SessionChange {
                        status: Some(SessionStatus::Escalated),
                        reason: Some(reason.to_owned()).filter(|r| !r.is_empty()),
                        ..SessionChange::default()
                    }
                } else {
                    SessionChange {
                        priority: Some(
                            serde_json::from_value::<Priority>(payload["priority"].clone())
                                .map_err(|_| {
                                    refused(
                                        "priority must be one of low, normal, high, urgent".into(),
                                    )
                                })?,
                        ),
                        ..SessionChange::default()
                    }
                };
                let changed = change_in_workspace(state, cause, workspace_id, session, change)
                    .await
                    .map_err(|e| e.to_string())?;
                if !changed {
                    return Err(refused("no such session in the plugin's workspace".into()));
                }
                if event.kind == "chat.escalate" {
                    for user in admins(state, workspace_id).await? {
                        notify(state, user, "session.escalated", json!({"session_id": session, "reason": reason, "plugin_id": plugin_id})).await;
                    }
                }
            }
            "notification" => {
                let title = payload["title"].as_str().unwrap_or("Notification");
                let message = payload["message"].as_str().unwrap_or_default();
                let members: Vec<(Uuid, String)> = state
                    .db
                    .fetch_all(
                        "SELECT user_id, role FROM workspace_members WHERE workspace_id = $1",
                        args![workspace_id],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let targets = audience(&members, &payload).map_err(refused)?;
                for user in targets {
                    notify(
                        state,
                        user,
                        "plugin.notification",
                        json!({"title": title, "message": message, "plugin_id": plugin_id}),
                    )
                    .await;
                }
            }
            other => {
                state
                    .bus
                    .publish(
                        &format!("workspace:{workspace_id}"),
                        &json!({"type": "plugin_event", "kind": other, "payload": payload, "plugin_id": plugin_id}),
                    )
                    .await;
            }
        }
    }
    Ok(())
}

/// Whom a `notification` is for, of the workspace's `(member, role)`s: those named by
/// `user_id`/`user_ids` or holding one of `roles`; every member when it names none.
fn audience(members: &[(Uuid, String)], payload: &Value) -> Result<Vec<Uuid>, String> {
    let (users, roles) = notification_audience(payload)?;
    if let Some(stranger) = users.iter().find(|u| !members.iter().any(|(m, _)| m == *u)) {
        return Err(format!(
            "the user {stranger} is not a member of the plugin's workspace"
        ));
    }
    let everyone = users.is_empty() && roles.is_empty();
    Ok(members
        .iter()
        .filter(|(user, role)| everyone || users.contains(user) || roles.contains(role))
        .map(|(user, _)| *user)
        .collect())
}

/// The users and roles a notification names (a rule's `send_notification` parameters are
/// checked with it when the rule is saved).
pub fn notification_audience(payload: &Value) -> Result<(Vec<Uuid>, Vec<String>), String> {
    let mut users = Vec::new();
    if payload.get("user_id").is_some_and(|v| !v.is_null()) {
        users.push(uuid_of(payload, "user_id")?);
    }
    let list = |key: &str| -> Result<Vec<String>, String> {
        match payload.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= MAX_AUDIENCE => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or(format!("{key} must hold strings"))
                })
                .collect(),
            Some(_) => Err(format!("{key} must be a list of at most {MAX_AUDIENCE}")),
        }
    };
    for id in list("user_ids")? {
        users.push(Uuid::parse_str(&id).map_err(|_| format!("`{id}` in user_ids is not a UUID"))?);
    }
    let roles = list("roles")?;
    if let Some(bad) = roles.iter().find(|r| Role::parse(r).is_none()) {
        return Err(format!("`{bad}` in roles is not owner, admin or member"));
    }
    Ok((users, roles))
}

/// How many users or roles one notification may name.
const MAX_AUDIENCE: usize = 100;

async fn admins(state: &AppState, workspace_id: Uuid) -> Result<Vec<Uuid>, String> {
    let rows: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT user_id FROM workspace_members WHERE workspace_id = $1 AND role IN ('owner', 'admin')",
            args![workspace_id],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}
