//! Replies from workflows: when an active workflow answers an agent's sessions (`reply: true`
//! on its trigger), chat stores the user's message and leaves the answer to the run. Chat
//! hears how the run ended through the event log (`workflow.run.*` with `reply_to`) and posts
//! the end node's output as the agent's reply, or the failure as a reply with status `error`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::messages::{Entry, append_as};
use super::responder::{Reply, ReplyStatus};
use super::{SESSION_COLUMNS, Session};
use crate::args;
use crate::error::AppResult;
use crate::infra::eventlog::{Consumer, Event, Handled};
use crate::state::AppState;

/// The most of a workflow's output a reply holds, as a message does.
const MAX_REPLY_CHARS: usize = 20_000;

/// The event log's `chat_replies` consumer.
pub struct WorkflowReplies(pub AppState);

impl Consumer for WorkflowReplies {
    fn name(&self) -> &'static str {
        "chat_replies"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a> {
        Box::pin(async move { post_reply(&self.0, event).await.map_err(|e| e.to_string()) })
    }
}

/// What a run's end event says to post.
struct Answer {
    run_id: Uuid,
    session_id: Uuid,
    message_id: Uuid,
    project_id: Uuid,
    reply: Reply,
    status: &'static str,
    error: Option<String>,
}

fn answer_of(event: &Event) -> Option<Answer> {
    let data = &event.data.0;
    let reply_to = data.get("reply_to")?;
    let id = |v: &Value, key: &str| v.get(key)?.as_str()?.parse::<Uuid>().ok();
    let tokens = |key: &str| reply_to.get(key).and_then(Value::as_i64).unwrap_or(0);
    let error = data.get("error").and_then(Value::as_str).map(str::to_owned);
    let (content, status) = match event.kind.as_str() {
        "workflow.run.succeeded" => {
            let text = output_text(data.get("output"));
            let status = if text.trim().is_empty() {
                "unanswered"
            } else {
                "ok"
            };
            (text, status)
        }
        "workflow.run.failed" => (
            format!(
                "The workflow could not answer: {}",
                error.as_deref().unwrap_or("it failed")
            ),
            "error",
        ),
        // A cancelled run answers nothing: someone stopped it on purpose.
        _ => return None,
    };
    Some(Answer {
        run_id: id(data, "run_id")?,
        session_id: id(reply_to, "session_id")?,
        message_id: id(reply_to, "message_id")?,
        project_id: id(reply_to, "project_id")?,
        reply: Reply {
            content,
            prompt_tokens: tokens("prompt_tokens"),
            completion_tokens: tokens("completion_tokens"),
            status: ReplyStatus::Ok,
        },
        status,
        error: (status == "error").then_some(error).flatten(),
    })
}

/// An output as a message's text: a string as it is, anything else as compact JSON.
fn output_text(output: Option<&Value>) -> String {
    let text = match output {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match text.char_indices().nth(MAX_REPLY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

async fn post_reply(state: &AppState, event: &Event) -> AppResult<()> {
    if !event.kind.starts_with("workflow.run.") {
        return Ok(());
    }
    let Some(answer) = answer_of(event) else {
        return Ok(());
    };
    // The reply's id is its run's: a redelivered event finds it and posts nothing twice.
    let posted: Option<(Uuid,)> = state
        .db
        .fetch_optional(
            "SELECT id FROM chat_messages WHERE id = $1",
            args![answer.run_id],
        )
        .await?;
    if posted.is_some() {
        return Ok(());
    }
    let session: Option<Session> = state
        .db
        .fetch_optional(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM chat_sessions s
                 JOIN chat_participants c ON c.session_id = s.id AND c.user_id = s.user_id
                 WHERE s.id = $1"
            ),
            args![answer.session_id],
        )
        .await?;
    let Some(session) = session.filter(|s| s.agent_id == answer.project_id) else {
        return Ok(());
    };
    let asked: Option<(DateTime<Utc>,)> = state
        .db
        .fetch_optional(
            "SELECT created_at FROM chat_messages WHERE id = $1 AND session_id = $2",
            args![answer.message_id, session.id],
        )
        .await?;
    let latency_ms = asked.map_or(0, |(at,)| (Utc::now() - at).num_milliseconds().max(0));
    append_as(
        state,
        &session,
        answer.run_id,
        Entry::Agent {
            reply: &answer.reply,
            status: answer.status,
            latency_ms,
            model: "workflow",
            citations: &[],
            error: answer.error.as_deref(),
        },
    )
    .await?;
    Ok(())
}
