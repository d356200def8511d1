//! A workflow's definition: a graph of typed nodes joined by edges, checked as a whole. Every
//! problem is reported at once, each at its JSON Pointer-like path
//! (`definition/nodes/2/config/project_id`).

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::automations::trigger::Trigger;
use crate::error::{AppError, FieldError};

/// Nodes one workflow may hold.
pub const MAX_NODES: usize = 100;
/// Edges one workflow may hold.
pub const MAX_EDGES: usize = 400;
/// The longest a `delay` or a `human` node's timeout may be.
const MAX_WAIT_SECONDS: i64 = 30 * 86_400;

/// The node types.
pub const NODE_TYPES: &[&str] = &[
    "trigger",
    "agent",
    "knowledge_search",
    "classify",
    "condition",
    "action",
    "notify",
    "transform",
    "delay",
    "human",
    "end",
];

/// `{"nodes": [...], "edges": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// 1–64 of `a-z`, `0-9`, `_`, `-`; unique in the workflow.
    pub id: String,
    /// One of trigger, agent, knowledge_search, classify, condition, action, notify,
    /// transform, delay, human, end.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's settings. A trigger: `kind` (manual, event, schedule, webhook),
    /// `event_type`, `project_id`, `conditions`, `cron`, and `reply: true` to answer the
    /// agent's chat sessions (event `chat.message.created` with a `project_id`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// A label for editors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where an editor draws it; kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub position: Option<Value>,
    /// How long one attempt of the node may take, 1–900 s (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Tries of a failing node before the run fails (default one try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// `{"attempts": 3, "backoff_seconds": 2}`: up to 3 tries, waiting 2 s, then 4 s between them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// 1–10.
    pub attempts: i64,
    /// The first wait, doubled after each try; 0–3600 (default 2).
    #[serde(default = "default_backoff")]
    pub backoff_seconds: i64,
}

fn default_backoff() -> i64 {
    2
}

/// The default time one attempt of a node may take.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 120;
const MAX_TIMEOUT_SECONDS: i64 = 900;

impl Node {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.timeout_seconds
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
                .clamp(1, MAX_TIMEOUT_SECONDS) as u64,
        )
    }

    pub fn attempts(&self) -> i64 {
        self.retry.map_or(1, |r| r.attempts.clamp(1, 10))
    }

    /// The wait after the `attempt`-th try failed.
    pub fn backoff(&self, attempt: i64) -> chrono::Duration {
        let first = self.retry.map_or(2, |r| r.backoff_seconds.clamp(0, 3600));
        chrono::Duration::seconds(first.saturating_mul(1 << (attempt - 1).clamp(0, 10)))
    }

    /// The branch names an edge's `when` may name.
    pub fn branches(&self) -> Vec<String> {
        branches_of(self)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// A branch of the node it leaves: a `classify` node's branch names, `true`/`false` of a
    /// `condition`, `resumed`/`timeout` of a `human` node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// What a check needs from outside the graph: which projects and plugins the author may use.
pub trait References {
    fn project_visible(&self, id: &str) -> bool;
    /// Whether an `action` (automation-action) or `notify` (integration) node may use it.
    fn plugin_usable(&self, node_kind: &str, id: &str) -> bool;
}

/// The problems of a definition, empty when it is valid.
pub fn check(definition: &Definition, refs: &dyn References) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: &str| errors.push(FieldError::new(field, message));
    if definition.nodes.len() > MAX_NODES {
        err("definition/nodes".into(), "holds at most 100 nodes");
    }
    if definition.edges.len() > MAX_EDGES {
        err("definition/edges".into(), "holds at most 400 edges");
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in definition.nodes.iter().enumerate() {
        let at = format!("definition/nodes/{i}");
        let id_ok = (1..=64).contains(&node.id.len())
            && node
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !id_ok {
            err(format!("{at}/id"), "is 1 to 64 of a-z, 0-9, _ and -");
        } else if index.insert(node.id.as_str(), i).is_some() {
            err(format!("{at}/id"), "is the id of an earlier node");
        }
        if node
            .timeout_seconds
            .is_some_and(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(&t))
        {
            err(format!("{at}/timeout_seconds"), "is 1 to 900");
        }
        if let Some(retry) = node.retry {
            if !(1..=10).contains(&retry.attempts) {
                err(format!("{at}/retry/attempts"), "is 1 to 10");
            }
            if !(0..=3600).contains(&retry.backoff_seconds) {
                err(format!("{at}/retry/backoff_seconds"), "is 0 to 3600");
            }
        }
        if !NODE_TYPES.contains(&node.kind.as_str()) {
            err(
                format!("{at}/type"),
                "is not a node type (trigger, agent, knowledge_search, classify, condition, action, notify, transform, delay, human, end)",
            );
            continue;
        }
        for (field, message) in check_config(node, refs) {
            err(format!("{at}/config{}", field), &message);
        }
    }
    let triggers: Vec<usize> = (0..definition.nodes.len())
        .filter(|i| definition.nodes[*i].kind == "trigger")
        .collect();
    match triggers.len() {
        0 => err("definition/nodes".into(), "needs one node of type trigger"),
        1 => {}
        _ => err(
            format!("definition/nodes/{}/type", triggers[1]),
            "is a second trigger: a workflow has one",
        ),
    }
    if !definition.nodes.iter().any(|n| n.kind == "end") {
        err("definition/nodes".into(), "needs a node of type end");
    }
    let mut next: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut edges_ok = true;
    for (i, edge) in definition.edges.iter().enumerate() {
        let at = format!("definition/edges/{i}");
        let from = index.get(edge.from.as_str()).copied();
        let to = index.get(edge.to.as_str()).copied();
        if from.is_none() {
            err(format!("{at}/from"), "names no node");
        }
        if to.is_none() {
            err(format!("{at}/to"), "names no node");
        }
        let (Some(from), Some(to)) = (from, to) else {
            edges_ok = false;
            continue;
        };
        if definition.nodes[to].kind == "trigger" {
            err(format!("{at}/to"), "leads into the trigger");
        }
        if definition.nodes[from].kind == "end" {
            err(format!("{at}/from"), "leaves an end node");
        }
        let branches = branches_of(&definition.nodes[from]);
        match (&edge.when, branches.is_empty()) {
            (Some(when), false) if !branches.contains(when) => err(
                format!("{at}/when"),
                &format!(
                    "is not a branch of `{}` ({})",
                    edge.from,
                    branches.join(", ")
                ),
            ),
            (Some(_), true) => err(
                format!("{at}/when"),
                &format!("`{}` has no branches", edge.from),
            ),
            _ => {}
        }
        next.entry(from).or_default().push(to);
    }
    if edges_ok && triggers.len() == 1 {
        if let Some(i) = cycle_edge(definition, &index) {
            err(
                format!("definition/edges/{i}"),
                "closes a cycle: a workflow is a graph without cycles",
            );
        } else {
            let reached = reachable(triggers[0], &next);
            for (i, _) in definition.nodes.iter().enumerate() {
                if !reached.contains(&i) {
                    err(
                        format!("definition/nodes/{i}"),
                        "cannot be reached from the trigger",
                    );
                }
            }
        }
    }
    errors
}

/// The branch names an edge's `when` may name for a node.
fn branches_of(node: &Node) -> Vec<String> {
    match node.kind.as_str() {
        "classify" => node
            .config
            .get("branches")
            .and_then(Value::as_object)
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default(),
        "condition" => vec!["true".into(), "false".into()],
        "human" => vec!["resumed".into(), "timeout".into()],
        _ => Vec::new(),
    }
}

fn reachable(start: usize, next: &HashMap<usize, Vec<usize>>) -> HashSet<usize> {
    let mut seen = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in next.get(&n).into_iter().flatten() {
            if seen.insert(*m) {
                queue.push_back(*m);
            }
        }
    }
    seen
}

/// The first edge (in order) that closes a cycle, if any.
fn cycle_edge(definition: &Definition, index: &HashMap<&str, usize>) -> Option<usize> {
    let mut next: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, edge) in definition.edges.iter().enumerate() {
        let (from, to) = (index[edge.from.as_str()], index[edge.to.as_str()]);
        if from == to || reachable(to, &next).contains(&from) {
            return Some(i);
        }
        next.entry(from).or_default().push(to);
    }
    None
}

/// The problems of one node's config: (path under `config`, message).
fn check_config(node: &Node, refs: &dyn References) -> Vec<(String, String)> {
    let c = &node.config;
    let mut problems = Vec::new();
    let text = |key: &str| c.get(key).and_then(Value::as_str);
    let need_text = |key: &str, problems: &mut Vec<(String, String)>| match c.get(key) {
        Some(Value::String(s)) => {
            if let Err(e) = crate::infra::template::validate(s) {
                problems.push((format!("/{key}"), format!("is not a valid template: {e}")));
            }
        }
        Some(_) => problems.push((format!("/{key}"), "must be a string".into())),
        None => problems.push((format!("/{key}"), "is required".into())),
    };
    let known: &[&str] = match node.kind.as_str() {
        "trigger" => {
            match text("kind") {
                Some("manual") => {}
                Some("event") => match text("event_type") {
                    Some(t) if crate::events::catalogue::find(t).is_some() => {
                        if let Err(AppError::Unprocessable { errors, .. }) =
                            event_trigger(&node.config).check()
                        {
                            problems.extend(errors.into_iter().map(|e| {
                                let field = e.field.trim_start_matches("trigger");
                                (field.to_owned(), e.message)
                            }));
                        }
                    }
                    _ => problems.push((
                        "/event_type".into(),
                        "is a type of the event catalogue (GET /api/events/types)".into(),
                    )),
                },
                Some("schedule") => {
                    if let Err(e) = text("cron").map_or(
                        Err("is required".into()),
                        crate::infra::cron::Schedule::parse,
                    ) {
                        problems
                            .push(("/cron".into(), format!("is a cron expression in UTC: {e}")));
                    }
                }
                Some("webhook") => {}
                _ => problems.push((
                    "/kind".into(),
                    "is manual, event, schedule or webhook".into(),
                )),
            }
            if c.contains_key("project_id")
                && !text("project_id").is_some_and(|p| refs.project_visible(p))
            {
                problems.push((
                    "/project_id".into(),
                    "is an agent (project) of the workspace you can see".into(),
                ));
            }
            match c.get("reply") {
                None | Some(Value::Bool(false)) => {}
                Some(Value::Bool(true))
                    if text("kind") == Some("event")
                        && text("event_type") == Some(super::triggers::CHAT_MESSAGE)
                        && c.contains_key("project_id") => {}
                Some(Value::Bool(true)) => problems.push((
                    "/reply".into(),
                    "answers an agent's chat: it needs kind event, event_type chat.message.created and a project_id".into(),
                )),
                Some(_) => problems.push(("/reply".into(), "must be true or false".into())),
            }
            &[
                "kind",
                "event_type",
                "conditions",
                "cron",
                "project_id",
                "reply",
            ]
        }
        "agent" => {
            match text("project_id") {
                Some(p) if refs.project_visible(p) => {}
                _ => problems.push((
                    "/project_id".into(),
                    "is an agent (project) of the workspace you can see".into(),
                )),
            }
            need_text("input", &mut problems);
            &["project_id", "input"]
        }
        "knowledge_search" => {
            need_text("query", &mut problems);
            &["query", "limit"]
        }
        "classify" => {
            if !matches!(text("by"), Some("keywords" | "intent" | "sentiment")) {
                problems.push(("/by".into(), "is keywords, intent or sentiment".into()));
            }
            need_text("input", &mut problems);
            match c.get("branches").and_then(Value::as_object) {
                Some(b) if !b.is_empty() && b.values().all(Value::is_array) => {}
                _ => problems.push((
                    "/branches".into(),
                    "maps each branch name to a list (of keywords, intents or sentiments)".into(),
                )),
            }
            &["by", "input", "branches"]
        }
        "condition" => {
            need_text("if", &mut problems);
            &["if"]
        }
        "action" | "notify" => {
            match text("plugin_id") {
                Some(p) if refs.plugin_usable(&node.kind, p) => {}
                _ => problems.push((
                    "/plugin_id".into(),
                    "is a plugin installed and enabled in the workspace".into(),
                )),
            }
            if node.kind == "notify" {
                need_text("text", &mut problems);
            }
            &["plugin_id", "parameters", "title", "text", "severity"]
        }
        "transform" => {
            need_text("template", &mut problems);
            &["template"]
        }
        "delay" => {
            if !c
                .get("seconds")
                .and_then(Value::as_i64)
                .is_some_and(|s| (1..=MAX_WAIT_SECONDS).contains(&s))
            {
                problems.push(("/seconds".into(), "is 1 to 2592000 (30 days)".into()));
            }
            &["seconds"]
        }
        "human" => {
            need_text("prompt", &mut problems);
            if c.get("timeout_seconds").is_some_and(|t| {
                !t.as_i64()
                    .is_some_and(|s| (1..=MAX_WAIT_SECONDS).contains(&s))
            }) {
                problems.push((
                    "/timeout_seconds".into(),
                    "is 1 to 2592000 (30 days)".into(),
                ));
            }
            &["prompt", "timeout_seconds"]
        }
        "end" => {
            if c.contains_key("output") {
                need_text("output", &mut problems);
            }
            &["output"]
        }
        _ => &[],
    };
    for key in c.keys() {
        if !known.contains(&key.as_str()) {
            problems.push((
                format!("/{key}"),
                format!("is not a field of a {} node", node.kind),
            ));
        }
    }
    problems
}

/// An `event` trigger node's config as an automation trigger: the same event types and the
/// same conditions (`{all: [...], any: [...]}` of `{field, op, value}`).
pub fn event_trigger(config: &Map<String, Value>) -> Trigger {
    Trigger {
        kind: "event".into(),
        event_type: config
            .get("event_type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        conditions: config
            .get("conditions")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    }
}
