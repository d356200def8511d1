//! The event a run's end records (`workflow.run.succeeded|failed|cancelled`), in the
//! transaction that ends it: webhooks, rules and the activity feed hear of runs through it,
//! and chat posts the answer of a workflow that answers an agent's sessions (`reply_to`).

use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use super::runs::RunStatus;
use crate::args;
use crate::db::Tx;
use crate::error::AppResult;
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};

#[derive(sqlx::FromRow)]
struct Ended {
    workflow_id: Uuid,
    workspace_id: Uuid,
    name: String,
    trigger: String,
    depth: i64,
    input: SqlJson<Value>,
    output: Option<SqlJson<Value>>,
    error: Option<String>,
}

/// Records the end of run `run_id` (its row already says `status`). `answers_chat`: the run's
/// version answers its agent's chat sessions, so a run a chat message started carries
/// `reply_to` with the message and the tokens its agent nodes spent.
pub async fn record(
    tx: &mut Tx,
    run_id: Uuid,
    status: RunStatus,
    answers_chat: bool,
) -> AppResult<()> {
    let kind = match status {
        RunStatus::Succeeded => "workflow.run.succeeded",
        RunStatus::Failed => "workflow.run.failed",
        RunStatus::Cancelled => "workflow.run.cancelled",
        RunStatus::Queued | RunStatus::Running | RunStatus::Waiting => return Ok(()),
    };
    let ended: Ended = tx
        .fetch_one(
            "SELECT r.workflow_id, r.workspace_id, w.name, r.trigger, r.depth, r.input, r.output,
                r.error
             FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id WHERE r.id = $1",
            args![run_id],
        )
        .await?;
    // Only an event carries a message the run may answer: a manual run's input is the
    // caller's, and must not name a session to post into.
    let reply_to = if answers_chat && ended.trigger == "event" {
        chat_message(tx, run_id, &ended.input.0).await?
    } else {
        None
    };
    let project_id = reply_to
        .as_ref()
        .and_then(|r| r.get("project_id"))
        .and_then(Value::as_str)
        .and_then(|p| p.parse().ok());
    let mut data = json!({
        "workflow_id": ended.workflow_id, "run_id": run_id, "status": status.as_str(),
        "trigger": ended.trigger, "output": ended.output.map(|o| o.0), "error": ended.error,
    });
    if let Some(reply_to) = reply_to {
        data["reply_to"] = reply_to;
    }
    eventlog::record(
        tx,
        &Cause::workflow(ended.workflow_id, ended.depth),
        NewEvent {
            workspace_id: ended.workspace_id,
            project_id,
            kind,
            subject: Subject::new("workflow_run", run_id, Some(ended.name)),
            data,
        },
    )
    .await?;
    Ok(())
}

/// The chat message a run started by `chat.message.created` answers, with the tokens its
/// agent nodes spent.
async fn chat_message(tx: &mut Tx, run_id: Uuid, input: &Value) -> AppResult<Option<Value>> {
    let field = |key: &str| input.get(key).filter(|v| v.is_string()).cloned();
    let (Some(session_id), Some(message_id), Some(project_id)) = (
        field("session_id"),
        field("message_id"),
        field("project_id"),
    ) else {
        return Ok(None);
    };
    let agents: Vec<(Option<SqlJson<Value>>,)> = tx
        .fetch_all(
            "SELECT output FROM workflow_run_nodes
             WHERE run_id = $1 AND node_type = 'agent' AND status = 'succeeded'",
            args![run_id],
        )
        .await?;
    let tokens = |key: &str| -> i64 {
        agents
            .iter()
            .filter_map(|(o,)| o.as_ref()?.0.get(key)?.as_i64())
            .sum()
    };
    Ok(Some(json!({
        "session_id": session_id, "message_id": message_id, "project_id": project_id,
        "prompt_tokens": tokens("prompt_tokens"), "completion_tokens": tokens("completion_tokens"),
    })))
}
