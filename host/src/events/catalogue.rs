//! The event catalogue: every type the log holds, what it means, the sentence the activity
//! feed shows for it and the JSON Schema of its `data` (as Stripe and GitHub document theirs).

use serde_json::{Map, Value, json};

/// One type of event.
pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    /// The activity feed's sentence: a template over `actor`, `subject` and `data`.
    pub summary: &'static str,
    /// The fields of `data`: (name, JSON type, description); a type ending in `?` may be null
    /// or absent.
    pub fields: &'static [(&'static str, &'static str, &'static str)],
}

impl EventType {
    /// The JSON Schema of the event's `data`.
    pub fn schema(&self) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, ty, description) in self.fields {
            let (base, optional) = match ty.strip_suffix('?') {
                Some(base) => (base, true),
                None => (*ty, false),
            };
            let mut property = match base {
                "uuid" => json!({"type": "string", "format": "uuid"}),
                "datetime" => json!({"type": "string", "format": "date-time"}),
                // Any JSON value (a workflow's output), spelled out: utoipa reads no empty schema.
                "any" => {
                    json!({"type": ["string", "number", "boolean", "object", "array", "null"]})
                }
                other => json!({"type": other}),
            };
            if optional && base != "any" {
                let ty = property["type"].clone();
                property["type"] = json!([ty, "null"]);
            } else {
                required.push(json!(name));
            }
            property["description"] = json!(description);
            properties.insert((*name).to_owned(), property);
        }
        json!({"type": "object", "properties": properties, "required": required})
    }
}

const PROJECT: (&str, &str, &str) = ("project_id", "uuid", "The agent (project).");
const NAME: (&str, &str, &str) = ("name", "string", "The project's name.");
const SESSION: (&str, &str, &str) = ("session_id", "uuid", "The chat session.");
const DOCUMENT: (&str, &str, &str) = ("document_id", "uuid", "The knowledge document.");
const TITLE: (&str, &str, &str) = ("title", "string", "Its title.");
const USER: (&str, &str, &str) = ("user_id", "uuid", "The member.");
const PLUGIN: (&str, &str, &str) = ("plugin_id", "string", "The plugin.");

const RUN_ENDED: &[(&str, &str, &str)] = &[
    ("workflow_id", "uuid", "The workflow."),
    (
        "run_id",
        "uuid",
        "The run (`GET /api/workflow-runs/{run_id}`).",
    ),
    ("status", "string", "succeeded, failed or cancelled."),
    ("trigger", "string", "manual, event, schedule or webhook."),
    (
        "output",
        "any",
        "The end node's output (null unless it succeeded).",
    ),
    ("error", "string?", "Why it failed or was cancelled."),
    (
        "reply_to",
        "object?",
        "For a workflow that answers an agent's chat (`reply: true`): the `session_id`, \
         `message_id` and `project_id` of the message the run answers, and the \
         `prompt_tokens` and `completion_tokens` its agent nodes spent.",
    ),
];

pub const TYPES: &[EventType] = &[
    EventType {
        name: "project.created",
        description: "An agent (project) was created, duplicated or made from a template.",
        summary: "{{ actor.name }} created {{ subject.name }}",
        fields: &[PROJECT, NAME],
    },
    EventType {
        name: "project.updated",
        description: "An agent's configuration changed (name, prompt, settings, provider, variants…).",
        summary: "{{ actor.name }} updated {{ subject.name }}",
        fields: &[
            PROJECT,
            NAME,
            ("fields", "array", "The fields that changed."),
            (
                "revision",
                "integer?",
                "The revision it made (`GET /api/projects/{id}/revisions/{number}`); none when \
                 the configuration a revision keeps did not change.",
            ),
            (
                "restored_from",
                "integer?",
                "The revision it restored, for a restore.",
            ),
        ],
    },
    EventType {
        name: "project.archived",
        description: "An agent was archived.",
        summary: "{{ actor.name }} archived {{ subject.name }}",
        fields: &[PROJECT, NAME],
    },
    EventType {
        name: "project.deleted",
        description: "An agent was deleted.",
        summary: "{{ actor.name }} deleted {{ subject.name }}",
        fields: &[PROJECT, NAME],
    },
    EventType {
        name: "project.shared",
        description: "An agent was shared with a user, or a share changed.",
        summary: "{{ actor.name }} shared {{ subject.name }} with {{ data.user_email }} ({{ data.permission }})",
        fields: &[
            PROJECT,
            NAME,
            ("user_id", "uuid", "Who it is shared with."),
            ("user_email", "string", "Their email."),
            ("permission", "string", "view, edit or admin."),
            ("expires_at", "datetime?", "When the share ends."),
        ],
    },
    EventType {
        name: "chat.session.created",
        description: "A chat session with an agent started.",
        summary: "{{ actor.name }} started the chat {{ subject.name }}",
        fields: &[SESSION, PROJECT, TITLE],
    },
    EventType {
        name: "chat.session.updated",
        description: "A chat session's title, status or priority changed (closing and escalating have types of their own as well).",
        summary: "{{ actor.name }} updated the chat {{ subject.name }}",
        fields: &[
            SESSION,
            PROJECT,
            TITLE,
            ("status", "string", "active, closed or escalated."),
            ("priority", "string", "low, normal, high or urgent."),
            ("changes", "array", "The fields that changed."),
        ],
    },
    EventType {
        name: "chat.session.closed",
        description: "A chat session was closed.",
        summary: "{{ actor.name }} closed the chat {{ subject.name }}",
        fields: &[SESSION, PROJECT, TITLE],
    },
    EventType {
        name: "chat.session.escalated",
        description: "A chat session was escalated to a human.",
        summary: "{{ actor.name }} escalated the chat {{ subject.name }}",
        fields: &[
            SESSION,
            PROJECT,
            TITLE,
            (
                "reason",
                "string?",
                "Why, when a rule or plugin gave a reason.",
            ),
        ],
    },
    EventType {
        name: "chat.message.created",
        description: "A user message or an agent reply was stored. The activity feed leaves its content out.",
        summary: "{{ actor.name }} posted a message in {{ subject.name }}",
        fields: &[
            SESSION,
            PROJECT,
            ("message_id", "uuid", "The message."),
            ("seq", "integer", "Its position in the session."),
            ("role", "string", "user or agent."),
            ("content", "string", "The text."),
            (
                "status",
                "string",
                "ok, unanswered or error (agent replies).",
            ),
            (
                "sentiment",
                "number?",
                "User messages: −1 (negative) to 1 (positive).",
            ),
            (
                "intent",
                "string?",
                "User messages: question, complaint, request, …",
            ),
            (
                "latency_ms",
                "integer?",
                "Agent replies: how long the answer took.",
            ),
            (
                "latency_seconds",
                "number?",
                "Agent replies: the same in seconds.",
            ),
        ],
    },
    EventType {
        name: "chat.message.rated",
        description: "An agent reply was rated.",
        summary: "{{ actor.name }} rated a reply {{ data.rating }}/5 in {{ subject.name }}",
        fields: &[
            SESSION,
            PROJECT,
            ("message_id", "uuid", "The reply."),
            ("rating", "integer", "1 to 5."),
        ],
    },
    EventType {
        name: "agent.error",
        description: "An agent's model provider failed to answer.",
        summary: "{{ actor.name }} could not answer in {{ subject.name }}: {{ data.error }}",
        fields: &[
            SESSION,
            PROJECT,
            ("message_id", "uuid", "The stored error reply."),
            ("error", "string", "What went wrong."),
        ],
    },
    EventType {
        name: "knowledge.document.created",
        description: "A knowledge document was added (directly or by an upload).",
        summary: "{{ actor.name }} added the document {{ subject.name }}",
        fields: &[
            DOCUMENT,
            TITLE,
            ("version", "integer", "Its version (1)."),
            ("project_ids", "array", "The agents it is attached to."),
        ],
    },
    EventType {
        name: "knowledge.document.updated",
        description: "A knowledge document got a new version, or its title, tags or agents changed.",
        summary: "{{ actor.name }} updated the document {{ subject.name }}",
        fields: &[
            DOCUMENT,
            TITLE,
            ("version", "integer", "Its current version."),
        ],
    },
    EventType {
        name: "knowledge.document.deleted",
        description: "A knowledge document was deleted.",
        summary: "{{ actor.name }} deleted the document {{ subject.name }}",
        fields: &[DOCUMENT, TITLE],
    },
    EventType {
        name: "knowledge.upload.completed",
        description: "Every file of a bulk upload was processed.",
        summary: "{{ actor.name }}'s upload finished: {{ data.indexed }} of {{ data.files }} files indexed",
        fields: &[
            ("upload_id", "uuid", "The upload."),
            ("files", "integer", "How many files it had."),
            ("indexed", "integer", "How many were indexed."),
            ("failed", "integer", "How many failed."),
        ],
    },
    EventType {
        name: "team.member.added",
        description: "A user was added to a workspace (or their role changed).",
        summary: "{{ actor.name }} added {{ subject.name }} to the workspace as {{ data.role }}",
        fields: &[
            USER,
            ("email", "string", "Their email."),
            ("role", "string", "owner, admin or member."),
        ],
    },
    EventType {
        name: "team.member.removed",
        description: "A user left or was removed from a workspace.",
        summary: "{{ actor.name }} removed {{ subject.name }} from the workspace",
        fields: &[USER, ("email", "string", "Their email.")],
    },
    EventType {
        name: "integration.installed",
        description: "A plugin was installed in a workspace.",
        summary: "{{ actor.name }} installed {{ subject.name }}",
        fields: &[PLUGIN, ("kind", "string", "The plugin's kind.")],
    },
    EventType {
        name: "integration.removed",
        description: "A plugin's installation was removed from a workspace.",
        summary: "{{ actor.name }} removed {{ subject.name }}",
        fields: &[PLUGIN],
    },
    EventType {
        name: "automation.rule.fired",
        description: "An automation rule fired and ran its actions.",
        summary: "The rule {{ subject.name }} fired on {{ data.event_type }}",
        fields: &[
            ("rule_id", "uuid", "The rule."),
            (
                "run_id",
                "uuid",
                "The run (`GET /api/automations/rules/{id}/runs`).",
            ),
            ("event_id", "uuid", "The event that fired it."),
            ("event_type", "string", "Its type."),
            ("status", "string", "succeeded or failed."),
        ],
    },
    EventType {
        name: "workflow.run.succeeded",
        description: "A workflow run reached its end node.",
        summary: "The workflow {{ subject.name }} ran to its end",
        fields: RUN_ENDED,
    },
    EventType {
        name: "workflow.run.failed",
        description: "A workflow run failed: a node failed after its retries, or the run \
            exceeded its limits.",
        summary: "The workflow {{ subject.name }} failed: {{ data.error }}",
        fields: RUN_ENDED,
    },
    EventType {
        name: "workflow.run.cancelled",
        description: "A workflow run was cancelled (POST /api/workflow-runs/{run_id}/cancel).",
        summary: "A run of the workflow {{ subject.name }} was cancelled",
        fields: RUN_ENDED,
    },
    EventType {
        name: "analytics.export.completed",
        description: "An analytics export finished and can be downloaded.",
        summary: "{{ actor.name }}'s {{ data.format }} export is ready",
        fields: &[
            ("export_id", "uuid", "The export."),
            ("format", "string", "Its format or exporter plugin."),
            ("download_url", "string", "Where to get it."),
        ],
    },
    EventType {
        name: "webhook.endpoint.disabled",
        description: "A webhook endpoint was disabled: it answered 410 Gone, or every delivery \
            failed for longer than NOVA_WEBHOOK_DISABLE_AFTER.",
        summary: "The webhook to {{ subject.name }} was disabled: {{ data.reason }}",
        fields: &[
            ("webhook_id", "uuid", "The endpoint."),
            ("url", "string", "Its URL."),
            ("reason", "string", "Why it was disabled."),
        ],
    },
];

/// The catalogue's entry for `name`.
pub fn find(name: &str) -> Option<&'static EventType> {
    TYPES.iter().find(|t| t.name == name)
}
