//! What the host does with the events a plugin emits, always inside the plugin's workspace:
//! `chat.escalate` and `chat.priority` change a session of that workspace, `notification`
//! reaches its members (or one of them); other kinds are published on the workspace's topic.

use serde_json::{Value, json};
use uuid::Uuid;

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
                let members: Vec<(Uuid,)> = state
                    .db
                    .fetch_all(
                        "SELECT user_id FROM workspace_members WHERE workspace_id = $1",
                        args![workspace_id],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let targets: Vec<Uuid> = match payload.get("user_id").filter(|v| !v.is_null()) {
                    Some(_) => {
                        let user = uuid_of(&payload, "user_id").map_err(refused)?;
                        if !members.iter().any(|(m,)| *m == user) {
                            return Err(refused(
                                "the user is not a member of the plugin's workspace".into(),
                            ));
                        }
                        vec![user]
                    }
                    None => members.into_iter().map(|(m,)| m).collect(),
                };
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
