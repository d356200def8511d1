//! What each node type does with its input. Templates in a node's config are rendered over
//! the run (`input`, `nodes.<id>.output`) before it runs; the rendered config is the node's
//! recorded input.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::definition::Node;
use crate::analytics::text;
use crate::automations::trigger::{contains_phrase, words};
use crate::chat::agent;
use crate::chat::responder::{ReplyStatus, Turn};
use crate::error::AppError;
use crate::infra::eventlog::Cause;
use crate::infra::sandbox::{self, Notification};
use crate::infra::template;
use crate::knowledge::search::{self, Scope, SearchQuery};
use crate::plugins::{self, Kind};
use crate::state::AppState;

/// What a node needs from its run.
pub struct Call {
    pub state: AppState,
    pub workspace_id: Uuid,
    pub workflow_id: Uuid,
    pub run_id: Uuid,
    pub dry_run: bool,
    pub depth: i64,
    /// What templates read.
    pub context: Value,
}

/// A node's outcome.
pub struct Done {
    pub output: Value,
    /// The branch taken, for nodes that have branches.
    pub branch: Option<String>,
    /// For a delay or a person: the node waits until then.
    pub wait_until: Option<DateTime<Utc>>,
}

impl Done {
    fn output(output: Value) -> Result<Done, String> {
        Ok(Done {
            output,
            branch: None,
            wait_until: None,
        })
    }

    fn branch(output: Value, branch: &str) -> Result<Done, String> {
        Ok(Done {
            output,
            branch: Some(branch.to_owned()),
            wait_until: None,
        })
    }
}

/// One try of a node.
pub struct Attempt {
    pub input: Value,
    pub result: Result<Done, String>,
    pub duration_ms: f64,
}

/// The most a `human` node waits when it names no timeout.
const DEFAULT_HUMAN_TIMEOUT_SECONDS: i64 = 30 * 86_400;
/// Passages a `knowledge_search` node returns by default, and at most.
const SEARCH_LIMIT: (i64, i64) = (5, 50);

/// Whether a node acts outside the run (a model, the knowledge index, a plugin): its start is
/// committed before it runs, so a crash during it counts as an attempt.
pub fn has_effect(kind: &str) -> bool {
    matches!(kind, "agent" | "knowledge_search" | "action" | "notify")
}

/// The node's config with every string rendered over `context`; a trigger's input is the
/// run's.
pub fn input_of(node: &Node, context: &Value) -> Value {
    if node.kind == "trigger" {
        return context.get("input").cloned().unwrap_or(Value::Null);
    }
    render_all(&Value::Object(node.config.clone()), context)
}

fn render_all(value: &Value, context: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(template::render(s, context)),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_all(v, context)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), render_all(v, context)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn text_of<'a>(input: &'a Value, key: &str) -> &'a str {
    input.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Runs one node on its rendered `input`.
pub async fn run(call: &Call, node: &Node, input: &Value) -> Result<Done, String> {
    match node.kind.as_str() {
        "trigger" => Done::output(input.clone()),
        "classify" => classify(input),
        "condition" => {
            let expression = node
                .config
                .get("if")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let holds = condition(expression, &call.context);
            Done::branch(
                json!({"result": holds}),
                if holds { "true" } else { "false" },
            )
        }
        "transform" => Done::output(json!({"text": text_of(input, "template")})),
        "delay" => {
            let seconds = input.get("seconds").and_then(Value::as_i64).unwrap_or(1);
            Ok(Done {
                output: json!({}),
                branch: None,
                wait_until: Some(Utc::now() + chrono::Duration::seconds(seconds)),
            })
        }
        "human" => {
            let seconds = input
                .get("timeout_seconds")
                .and_then(Value::as_i64)
                .unwrap_or(DEFAULT_HUMAN_TIMEOUT_SECONDS);
            Ok(Done {
                output: json!({"prompt": text_of(input, "prompt")}),
                branch: None,
                wait_until: Some(Utc::now() + chrono::Duration::seconds(seconds)),
            })
        }
        "end" => Done::output(input.get("output").cloned().unwrap_or(Value::Null)),
        "agent" => ask_agent(call, input).await,
        "knowledge_search" => search_knowledge(call, input).await,
        "action" | "notify" => call_plugin(call, node, input).await,
        other => Err(format!("`{other}` is not a node type")),
    }
}

/// The branch whose keywords (or intents, or sentiments) the text has; the branch with an
/// empty list is the default.
fn classify(input: &Value) -> Result<Done, String> {
    let by = text_of(input, "by");
    let content = text_of(input, "input");
    let branches: Vec<(&String, Vec<String>)> = input
        .get("branches")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, list)| {
            let items = list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect();
            (name, items)
        })
        .collect();
    let default = branches
        .iter()
        .find(|(_, items)| items.is_empty())
        .map(|(n, _)| *n);
    let (chosen, detail) = match by {
        "keywords" => {
            let said = words(content);
            let best = branches
                .iter()
                .map(|(name, keywords)| {
                    let hits: Vec<&String> = keywords
                        .iter()
                        .filter(|k| contains_phrase(&said, &words(k)))
                        .collect();
                    (*name, hits)
                })
                .filter(|(_, hits)| !hits.is_empty())
                .max_by_key(|(_, hits)| hits.len());
            match best {
                Some((name, hits)) => (Some(name), json!({"matched": hits})),
                None => (default, json!({"matched": []})),
            }
        }
        "intent" | "sentiment" => {
            let score = text::sentiment(content);
            let label = if by == "intent" {
                text::intent(content, score)
            } else {
                text::sentiment_label(score)
            };
            let found = branches
                .iter()
                .find(|(_, labels)| labels.iter().any(|l| l == label))
                .map(|(n, _)| *n);
            (
                found.or(default),
                json!({"label": label, "sentiment": score}),
            )
        }
        other => return Err(format!("`{other}` is not a way to classify")),
    };
    let Some(branch) = chosen else {
        return Err("no branch matched, and no branch has an empty list to be the default".into());
    };
    let mut output = json!({"branch": branch, "by": by});
    if let (Some(o), Value::Object(extra)) = (output.as_object_mut(), detail) {
        o.extend(extra);
    }
    Done::branch(output, branch)
}

/// Comparisons a condition may make, longest first so `>=` is not read as `>`.
const OPERATORS: &[&str] = &[" == ", " != ", " >= ", " <= ", " > ", " < ", " contains "];

/// `{{ a }} == 'x'`, `{{ nodes.score.output.value }} >= 3`, `{{ a }} contains refund`, or a
/// lone template that holds unless it renders empty, `false`, `0`, `no` or `null`. The
/// operator is found outside `{{ … }}`, so values that hold one do not change the reading.
pub fn condition(expression: &str, context: &Value) -> bool {
    let (left, op, right) = split_operator(expression);
    let side = |s: &str| {
        let rendered = template::render(s.trim(), context);
        let t = rendered.trim();
        let unquoted = t
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .or_else(|| t.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
            .unwrap_or(t);
        unquoted.to_owned()
    };
    let a = side(left);
    let Some(op) = op else {
        return !matches!(
            a.to_lowercase().as_str(),
            "" | "false" | "0" | "no" | "null"
        );
    };
    let b = side(right);
    let numbers = a.parse::<f64>().ok().zip(b.parse::<f64>().ok());
    match (op.trim(), numbers) {
        ("==", Some((x, y))) => x == y,
        ("!=", Some((x, y))) => x != y,
        ("==", None) => a == b,
        ("!=", None) => a != b,
        (">=", Some((x, y))) => x >= y,
        ("<=", Some((x, y))) => x <= y,
        (">", Some((x, y))) => x > y,
        ("<", Some((x, y))) => x < y,
        ("contains", _) => a.to_lowercase().contains(&b.to_lowercase()),
        _ => false,
    }
}

fn split_operator(expression: &str) -> (&str, Option<&str>, &str) {
    let mut depth = 0usize;
    let bytes = expression.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if expression[i..].starts_with("{{") {
            depth += 1;
            i += 2;
            continue;
        }
        if expression[i..].starts_with("}}") {
            depth = depth.saturating_sub(1);
            i += 2;
            continue;
        }
        if depth == 0
            && let Some(op) = OPERATORS
                .iter()
                .find(|op| expression[i..].starts_with(**op))
        {
            return (&expression[..i], Some(op), &expression[i + op.len()..]);
        }
        i += expression[i..].chars().next().map_or(1, char::len_utf8);
    }
    (expression, None, "")
}

async fn ask_agent(call: &Call, input: &Value) -> Result<Done, String> {
    let project_id = text_of(input, "project_id")
        .parse::<Uuid>()
        .map_err(|_| "`project_id` is not an id".to_owned())?;
    let project =
        crate::projects::queries::load_in_workspace(&call.state.db, call.workspace_id, project_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the agent is no longer in this workspace")?;
    let question = text_of(input, "input").trim();
    if question.is_empty() {
        return Err("the agent's input rendered empty".into());
    }
    let turns = [Turn {
        role: "user",
        content: question.to_owned(),
    }];
    // The answer is kept whole; nobody listens to its tokens.
    let (tokens, _) = tokio::sync::mpsc::channel(1);
    let answer = agent::answer(&call.state, &project, None, &turns, question, tokens)
        .await
        .map_err(|e| e.to_string())?;
    let reply = answer.reply?;
    Done::output(json!({
        "text": reply.content,
        "status": match reply.status { ReplyStatus::Ok => "ok", ReplyStatus::Unanswered => "unanswered" },
        "citations": answer.citations,
        "model": answer.model,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "latency_ms": answer.latency_ms,
    }))
}

async fn search_knowledge(call: &Call, input: &Value) -> Result<Done, String> {
    let query = text_of(input, "query")
        .trim()
        .chars()
        .take(500)
        .collect::<String>();
    if query.is_empty() {
        return Err("the query rendered empty".into());
    }
    let limit = input
        .get("limit")
        .and_then(Value::as_i64)
        .unwrap_or(SEARCH_LIMIT.0)
        .clamp(1, SEARCH_LIMIT.1);
    let q = SearchQuery {
        q: query.clone(),
        project_id: None,
        tag: None,
        category: None,
        file_type: None,
        updated_since: None,
        limit: Some(limit),
        cursor: None,
    };
    let hits = search::find(
        &call.state.db,
        Scope::Workspace(call.workspace_id),
        &q,
        limit,
        0,
    )
    .await
    .map_err(|e| e.to_string())?;
    Done::output(json!({"query": query, "count": hits.len(), "results": hits}))
}

/// An `action` (automation-action plugin) or `notify` (integration) node; in a dry run, what
/// the plugin would have been given.
async fn call_plugin(call: &Call, node: &Node, input: &Value) -> Result<Done, String> {
    let plugin_id = text_of(input, "plugin_id");
    if call.dry_run {
        return Done::output(json!({"dry_run": true, "plugin_id": plugin_id, "would_send": input}));
    }
    let kind = if node.kind == "notify" {
        Kind::Integration
    } else {
        Kind::AutomationAction
    };
    let installed = plugins::usable(&call.state.db, call.workspace_id, plugin_id, kind)
        .await
        .map_err(|e| match e {
            AppError::Unprocessable { detail, .. } => detail,
            other => other.to_string(),
        })?;
    let plugin_call = if node.kind == "notify" {
        let link = call
            .state
            .config
            .public_url
            .as_deref()
            .map(|base| format!("{base}/api/workflow-runs/{}", call.run_id));
        sandbox::Call::Notify(Notification {
            title: Some(text_of(input, "title"))
                .filter(|t| !t.is_empty())
                .map_or_else(|| "Nova workflow".to_owned(), str::to_owned),
            text: text_of(input, "text").to_owned(),
            url: link,
            severity: Some(text_of(input, "severity"))
                .filter(|t| !t.is_empty())
                .unwrap_or("info")
                .to_owned(),
        })
    } else {
        let parameters = input
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({}));
        sandbox::Call::Run {
            params: parameters.to_string(),
            event: sandbox::Event {
                kind: "workflow.node".into(),
                payload: call
                    .context
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            },
        }
    };
    let cause = Cause::workflow(call.workflow_id, call.depth);
    let outcome = plugins::invoke_for(&call.state, &cause, &installed, "workflow", plugin_call)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Done::output(plugins::output_json(&outcome.output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let context = json!({"nodes": {"a": {"output": {"n": 4, "text": "a == b"}}}});
        assert!(condition("{{ nodes.a.output.n }} >= 3", &context));
        assert!(!condition("{{ nodes.a.output.n }} < 3", &context));
        assert!(condition("{{ nodes.a.output.n }} == 4.0", &context));
        assert!(condition("{{ nodes.a.output.text }} == 'a == b'", &context));
        assert!(condition(
            "{{ nodes.a.output.text }} contains A ==",
            &context
        ));
        assert!(condition("{{ nodes.a.output.n }}", &context));
        assert!(!condition("{{ nodes.a.output.missing }}", &context));
    }

    #[test]
    fn keyword_branches() {
        let input = json!({"by": "keywords", "input": "I need a refund for my invoice",
                           "branches": {"billing": ["invoice", "refund"], "other": []}});
        assert_eq!(classify(&input).unwrap().branch.as_deref(), Some("billing"));
        let hello = json!({"by": "keywords", "input": "hello",
                           "branches": {"billing": ["invoice", "refund"], "other": []}});
        assert_eq!(classify(&hello).unwrap().branch.as_deref(), Some("other"));
        let no_default =
            json!({"by": "keywords", "input": "hello", "branches": {"billing": ["invoice"]}});
        assert!(classify(&no_default).is_err());
    }
}
