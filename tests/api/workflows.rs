//! Workflow definitions: the README's example saved and versioned, validation that points at
//! the node and field, lists, and who may see and delete a workflow.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, eventually};
use crate::on_both;

/// The README's triage example, with `agent` as the billing agent.
fn triage(agent: &str) -> Value {
    json!({"nodes": [
        {"id": "start",   "type": "trigger",  "config": {"kind": "manual"}},
        {"id": "triage",  "type": "classify", "config": {"by": "keywords", "input": "{{ input.message }}",
                                                         "branches": {"billing": ["invoice", "refund", "charge"], "other": []}}},
        {"id": "billing", "type": "agent",    "config": {"project_id": agent, "input": "{{ input.message }}"}},
        {"id": "handoff", "type": "human",    "config": {"prompt": "Please answer this customer", "timeout_seconds": 3600}},
        {"id": "done",    "type": "end",      "config": {"output": "{{ nodes.billing.output.text }}{{ nodes.handoff.output.text }}"}}],
     "edges": [
        {"from": "start", "to": "triage"},
        {"from": "triage", "to": "billing", "when": "billing"},
        {"from": "triage", "to": "handoff", "when": "other"},
        {"from": "billing", "to": "done"},
        {"from": "handoff", "to": "done"}]})
}

fn fields(r: &crate::helpers::Resp) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn workflow_crud_versions_and_access(app: TestApp) {
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let mallory = app.register("mallory").await;
    let agent = app.agent(&alice, json!({})).await;
    let r = app
        .post(
            "/api/workflows",
            &alice.token,
            json!({"name": "Triage", "description": "Billing or a human", "definition": triage(&agent)}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["is_active"], false);
    assert_eq!(r.body["user_id"], alice.id.as_str());
    assert_eq!(
        r.body["definition"]["nodes"][2]["config"]["project_id"],
        agent.as_str()
    );

    // Every PUT is a version; a stale one is a 409.
    let mut changed = triage(&agent);
    changed["nodes"][3]["config"]["timeout_seconds"] = json!(60);
    let r = app
        .put(
            &format!("/api/workflows/{id}"),
            &alice.token,
            json!({"name": "Triage", "definition": changed, "is_active": true, "version": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["is_active"], true);
    let stale = app
        .put(
            &format!("/api/workflows/{id}"),
            &alice.token,
            json!({"name": "Late", "definition": triage(&agent), "version": 1}),
        )
        .await;
    assert_problem(&stale, 409);
    let versions = app
        .get(
            &format!("/api/workflows/{id}/versions?limit=1"),
            &alice.token,
        )
        .await;
    assert_eq!(versions.status, 200, "{:?}", versions.body);
    assert_eq!(versions.body["items"][0]["version"], 2);
    assert_eq!(
        versions.body["items"][0]["definition"]["nodes"][3]["config"]["timeout_seconds"],
        60
    );
    let cursor = versions.body["next_cursor"].as_str().unwrap();
    let older = app
        .get(
            &format!("/api/workflows/{id}/versions?limit=1&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(older.body["items"][0]["version"], 1);
    assert!(older.body["next_cursor"].is_null());

    // Lists: filters and words.
    app.post(
        "/api/workflows",
        &alice.token,
        json!({"name": "Nightly digest", "definition": {"nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "schedule", "cron": "0 6 * * *"}},
            {"id": "done", "type": "end", "config": {}}],
            "edges": [{"from": "start", "to": "done"}]}}),
    )
    .await;
    let listed = app.get("/api/workflows?is_active=true", &alice.token).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let found = app.get("/api/workflows?q=DIGEST", &alice.token).await;
    assert_eq!(found.body["items"][0]["name"], "Nightly digest");
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);

    // Strangers see nothing; members read and write; deleting is the author's or an admin's.
    assert_problem(
        &app.get(&format!("/api/workflows/{id}"), &mallory.token)
            .await,
        404,
    );
    assert_eq!(
        app.get("/api/workflows", &mallory.token).await.body["items"],
        json!([])
    );
    let add = app
        .post(
            &format!("/api/team/workspaces/{}/members", alice.workspace_id),
            &alice.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await;
    assert_eq!(add.status, 201, "{:?}", add.body);
    assert_eq!(
        app.get(&format!("/api/workflows/{id}"), &carol.token)
            .await
            .status,
        200
    );
    assert_problem(
        &app.delete(&format!("/api/workflows/{id}"), &carol.token)
            .await,
        403,
    );
    assert_eq!(
        app.delete(&format!("/api/workflows/{id}"), &alice.token)
            .await
            .status,
        204
    );
    assert_problem(
        &app.get(&format!("/api/workflows/{id}"), &alice.token).await,
        404,
    );
}
on_both!(workflow_crud_versions_and_access);

async fn validation_points_at_the_node_and_field(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let agent = app.agent(&alice, json!({})).await;
    let theirs = app.agent(&bob, json!({})).await;
    let valid = app
        .post(
            "/api/workflows/validate",
            &alice.token,
            json!({"definition": triage(&agent)}),
        )
        .await;
    assert_eq!(valid.status, 200, "{:?}", valid.body);
    assert_eq!(valid.body["nodes"], 5);

    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut d = triage(&agent);
                d["nodes"][1]["type"] = json!("sort");
                d
            },
            "definition/nodes/1/type",
        ),
        (
            {
                let mut d = triage(&agent);
                d["edges"][3]["to"] = json!("nowhere");
                d
            },
            "definition/edges/3/to",
        ),
        (
            {
                let mut d = triage(&agent);
                d["edges"][1]["when"] = json!("sales");
                d
            },
            "definition/edges/1/when",
        ),
        (
            {
                let mut d = triage(&agent);
                d["edges"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"from": "done", "to": "triage"}));
                d
            },
            "definition/edges/5/from",
        ),
        (
            {
                let mut d = triage(&agent);
                d["edges"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"from": "billing", "to": "triage"}));
                d
            },
            "definition/edges/5",
        ),
        (
            {
                let mut d = triage(&agent);
                d["edges"].as_array_mut().unwrap().remove(2);
                d
            },
            "definition/nodes/3",
        ),
        (
            {
                let mut d = triage(&agent);
                d["nodes"][0]["type"] = json!("end");
                d["edges"].as_array_mut().unwrap().remove(0);
                d
            },
            "definition/nodes",
        ),
        (triage(&theirs), "definition/nodes/2/config/project_id"),
        (
            {
                let mut d = triage(&agent);
                d["nodes"][4]["config"]["output"] = json!("{{ nodes.billing.output.text ");
                d
            },
            "definition/nodes/4/config/output",
        ),
        (
            {
                let mut d = triage(&agent);
                d["nodes"][3]["config"]["promt"] = json!("typo");
                d
            },
            "definition/nodes/3/config/promt",
        ),
        (
            {
                let mut d = triage(&agent);
                d["nodes"][0]["config"] = json!({"kind": "schedule", "cron": "every day"});
                d
            },
            "definition/nodes/0/config/cron",
        ),
        (
            {
                let mut d = triage(&agent);
                d["nodes"][0]["config"] = json!({"kind": "event", "event_type": "chat.nothing"});
                d
            },
            "definition/nodes/0/config/event_type",
        ),
        (
            {
                let mut d = triage(&agent);
                d["nodes"][3] = json!({"id": "handoff", "type": "action",
                    "config": {"plugin_id": "not-installed", "parameters": {}}});
                d["edges"][4] = json!({"from": "handoff", "to": "done"});
                d["edges"][2] = json!({"from": "triage", "to": "handoff", "when": "other"});
                d
            },
            "definition/nodes/3/config/plugin_id",
        ),
    ];
    for (definition, field) in cases {
        let r = app
            .post(
                "/api/workflows",
                &alice.token,
                json!({"name": "Broken", "definition": definition}),
            )
            .await;
        assert_problem(&r, 422);
        assert!(
            fields(&r).iter().any(|f| f == field),
            "{field} not in {:?}",
            r.body
        );
    }
    // Unknown fields of a node are refused too.
    let mut d = triage(&agent);
    d["nodes"][0]["colour"] = json!("red");
    let r = app
        .call(
            Method::POST,
            "/api/workflows/validate",
            Some(&alice.token),
            Some(json!({"definition": d})),
        )
        .await;
    assert_problem(&r, 422);
    // Nothing was saved.
    assert_eq!(
        app.get("/api/workflows", &alice.token).await.body["items"],
        json!([])
    );
}
on_both!(validation_points_at_the_node_and_field);

/// Polls a run until `done` holds for it.
pub(crate) async fn run_until(
    app: &TestApp,
    token: &str,
    run_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/api/workflow-runs/{run_id}");
    eventually("the run", || async {
        let r = app.get(&path, token).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        done(&r.body).then_some(r.body)
    })
    .await
}

pub(crate) fn node<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node_id"] == id))
        .unwrap_or(&Value::Null)
}

pub(crate) async fn create(app: &TestApp, token: &str, definition: Value, active: bool) -> String {
    let r = app
        .post(
            "/api/workflows",
            token,
            json!({"name": "Flow", "definition": definition, "is_active": active}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn start(app: &TestApp, token: &str, workflow: &str, body: Value) -> String {
    let r = app
        .post(&format!("/api/workflows/{workflow}/run"), token, body)
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The README's example, as written: a refund takes the billing branch and the agent's
/// fallback text is the output; "hello" waits for a person, who resumes it.
async fn readme_example_runs_as_described(app: TestApp) {
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let agent = app
        .agent(
            &alice,
            json!({"fallback_message": "Billing will write to you today."}),
        )
        .await;
    let workflow = create(&app, &alice.token, triage(&agent), false).await;

    let refund = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"message": "I need a refund for my invoice"}}),
    )
    .await;
    let run = run_until(&app, &alice.token, &refund, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "Billing will write to you today.");
    assert_eq!(run["version"], 1);
    assert_eq!(run["trigger"], "manual");
    assert_eq!(node(&run, "triage")["branch"], "billing");
    assert_eq!(
        node(&run, "triage")["output"]["matched"],
        json!(["invoice", "refund"])
    );
    assert_eq!(node(&run, "billing")["status"], "succeeded");
    assert_eq!(node(&run, "billing")["attempts"], 1);
    assert_eq!(
        node(&run, "billing")["input"]["input"],
        "I need a refund for my invoice"
    );
    assert_eq!(node(&run, "billing")["output"]["status"], "unanswered");
    assert!(node(&run, "billing")["duration_ms"].as_f64().is_some());
    assert_eq!(node(&run, "handoff")["status"], "skipped");
    assert_eq!(node(&run, "done")["status"], "succeeded");

    let hello = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"message": "hello"}}),
    )
    .await;
    let run = run_until(&app, &alice.token, &hello, |r| r["status"] == "waiting").await;
    assert_eq!(node(&run, "handoff")["status"], "waiting");
    assert_eq!(
        node(&run, "handoff")["output"]["prompt"],
        "Please answer this customer"
    );
    assert!(node(&run, "handoff")["wake_at"].is_string());
    assert_eq!(node(&run, "billing")["status"], "skipped");
    // Resuming another node, or as a stranger, is refused.
    let resume = format!("/api/workflow-runs/{hello}/resume");
    assert_problem(
        &app.post(
            &resume,
            &alice.token,
            json!({"node_id": "billing", "output": {}}),
        )
        .await,
        409,
    );
    assert_problem(
        &app.post(
            &resume,
            &alice.token,
            json!({"node_id": "nope", "output": {}}),
        )
        .await,
        422,
    );
    assert_problem(
        &app.post(
            &resume,
            &mallory.token,
            json!({"node_id": "handoff", "output": {}}),
        )
        .await,
        404,
    );
    let r = app
        .post(
            &resume,
            &alice.token,
            json!({"node_id": "handoff", "output": {"text": "Hi! How can I help?"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let run = run_until(&app, &alice.token, &hello, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "Hi! How can I help?");
    assert_eq!(node(&run, "handoff")["branch"], "resumed");
    assert_problem(
        &app.post(
            &resume,
            &alice.token,
            json!({"node_id": "handoff", "output": {}}),
        )
        .await,
        409,
    );

    // The runs list, newest first, filtered by status; strangers see nothing.
    let runs = app
        .get(&format!("/api/workflows/{workflow}/runs"), &alice.token)
        .await;
    assert_eq!(runs.status, 200, "{:?}", runs.body);
    assert_eq!(
        crate::helpers::column(&runs.body, "items", "id"),
        vec![hello.as_str(), refund.as_str()]
    );
    let waiting = app
        .get(
            &format!("/api/workflows/{workflow}/runs?status=waiting"),
            &alice.token,
        )
        .await;
    assert_eq!(waiting.body["items"], json!([]));
    assert_problem(
        &app.get(&format!("/api/workflows/{workflow}/runs"), &mallory.token)
            .await,
        404,
    );
    assert_problem(
        &app.get(&format!("/api/workflow-runs/{hello}"), &mallory.token)
            .await,
        404,
    );
    assert_problem(
        &app.post(
            &format!("/api/workflows/{workflow}/run"),
            &mallory.token,
            json!({}),
        )
        .await,
        404,
    );
    assert_problem(
        &app.post(
            &format!("/api/workflows/{workflow}/run"),
            &alice.token,
            json!({"input": [1]}),
        )
        .await,
        422,
    );
}
on_both!(readme_example_runs_as_described);

/// A triage workflow end to end against the mock model: billing answers from its knowledge,
/// support through its model, anything else goes to a person.
async fn triage_with_knowledge_and_model(app: TestApp) {
    let alice = app.register("alice").await;
    let billing = app.agent(&alice, json!({})).await;
    let r = app
        .post(
            "/api/knowledge/documents",
            &alice.token,
            json!({"title": "Refunds", "file_type": "txt", "project_ids": [billing],
                   "content": "Refunds for an invoice are paid back within five working days."}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let support = app.agent(&alice, json!({})).await;
    app.answer_with_echo(&alice, &support).await;
    let definition = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "triage", "type": "classify", "config": {"by": "keywords", "input": "{{ input.message }}",
            "branches": {"billing": ["refund", "invoice"], "support": ["broken", "error"], "other": []}}},
        {"id": "billing", "type": "agent", "config": {"project_id": billing, "input": "{{ input.message }}"}},
        {"id": "support", "type": "agent", "config": {"project_id": support, "input": "{{ input.message }}"}},
        {"id": "escalate", "type": "human", "config": {"prompt": "{{ input.message }}"}},
        {"id": "lookup", "type": "knowledge_search", "config": {"query": "refunds"}},
        {"id": "done", "type": "end", "config": {"output":
            "{{ nodes.billing.output.text }}{{ nodes.support.output.text }}{{ nodes.escalate.output.text }}"}}],
     "edges": [
        {"from": "start", "to": "triage"}, {"from": "start", "to": "lookup"},
        {"from": "triage", "to": "billing", "when": "billing"},
        {"from": "triage", "to": "support", "when": "support"},
        {"from": "triage", "to": "escalate", "when": "other"},
        {"from": "billing", "to": "done"}, {"from": "support", "to": "done"},
        {"from": "escalate", "to": "done"}, {"from": "lookup", "to": "done"}]});
    let workflow = create(&app, &alice.token, definition, false).await;

    let run = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"message": "When is my refund paid?"}}),
    )
    .await;
    let run = run_until(&app, &alice.token, &run, |r| r["status"] == "succeeded").await;
    let text = run["output"].as_str().unwrap_or_default();
    assert!(text.contains("five working days"), "{run:?}");
    assert_eq!(node(&run, "billing")["output"]["status"], "ok");
    assert_eq!(
        node(&run, "billing")["output"]["citations"][0]["title"],
        "Refunds"
    );
    assert_eq!(node(&run, "lookup")["output"]["count"], 1);
    assert_eq!(node(&run, "support")["status"], "skipped");

    let run = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"message": "The app is broken"}}),
    )
    .await;
    let run = run_until(&app, &alice.token, &run, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "You said: The app is broken");
    assert_eq!(node(&run, "support")["output"]["model"], "echo");

    let run_id = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"message": "Can I speak to someone?"}}),
    )
    .await;
    run_until(&app, &alice.token, &run_id, |r| {
        node(r, "escalate")["status"] == "waiting"
    })
    .await;
    let r = app
        .post(
            &format!("/api/workflow-runs/{run_id}/resume"),
            &alice.token,
            json!({"node_id": "escalate", "output": {"text": "Calling you now."}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let run = run_until(&app, &alice.token, &run_id, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "Calling you now.");
}
on_both!(triage_with_knowledge_and_model);

/// Cancel stops a waiting run for good; conditions, transforms, delays, retries and a dry
/// run of an action.
async fn cancel_conditions_delays_and_dry_runs(app: TestApp) {
    let alice = app.register("alice").await;
    let definition = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "big", "type": "condition", "config": {"if": "{{ input.amount }} >= 100"}},
        {"id": "pause", "type": "delay", "config": {"seconds": 1}},
        {"id": "note", "type": "transform", "config": {"template": "small: {{ input.amount }}"}},
        {"id": "tell", "type": "action", "config": {"plugin_id": "send-notification",
            "parameters": {"title": "Big order", "message": "{{ input.amount }}", "users": ["owner"]}}},
        {"id": "wait", "type": "human", "config": {"prompt": "Approve?"}},
        {"id": "done", "type": "end", "config": {"output": "{{ nodes.note.output.text }}{{ nodes.tell.output.dry_run }}"}}],
     "edges": [
        {"from": "start", "to": "big"},
        {"from": "big", "to": "pause", "when": "true"}, {"from": "big", "to": "note", "when": "false"},
        {"from": "pause", "to": "tell"}, {"from": "tell", "to": "wait"},
        {"from": "wait", "to": "done"}, {"from": "note", "to": "done"}]});
    let workflow = create(&app, &alice.token, definition, false).await;

    let small = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"amount": 20}}),
    )
    .await;
    let run = run_until(&app, &alice.token, &small, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "small: 20");
    assert_eq!(node(&run, "big")["branch"], "false");
    assert_eq!(node(&run, "pause")["status"], "skipped");

    // A dry run: the delay waits, the action shows what it would get, then a person.
    let big = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"amount": 250}, "dry_run": true}),
    )
    .await;
    let run = run_until(&app, &alice.token, &big, |r| {
        r["status"] == "waiting" && node(r, "wait")["status"] == "waiting"
    })
    .await;
    assert_eq!(run["dry_run"], true);
    assert_eq!(node(&run, "pause")["status"], "succeeded");
    assert!(
        node(&run, "pause")["duration_ms"]
            .as_f64()
            .unwrap_or_default()
            >= 900.0,
        "{run:?}"
    );
    assert_eq!(node(&run, "tell")["output"]["dry_run"], true);
    assert_eq!(
        node(&run, "tell")["output"]["would_send"]["parameters"]["message"],
        "250"
    );
    let cancel = format!("/api/workflow-runs/{big}/cancel");
    let r = app.post(&cancel, &alice.token, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(node(&r.body, "wait")["status"], "cancelled");
    assert_eq!(node(&r.body, "done")["status"], "cancelled");
    assert_problem(&app.post(&cancel, &alice.token, json!({})).await, 409);
    assert_problem(
        &app.post(
            &format!("/api/workflow-runs/{big}/resume"),
            &alice.token,
            json!({"node_id": "wait", "output": {}}),
        )
        .await,
        409,
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let r = app
        .get(&format!("/api/workflow-runs/{big}"), &alice.token)
        .await;
    assert_eq!(r.body["status"], "cancelled");

    // A node that keeps failing is tried as often as its retry says, then fails the run.
    let failing = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "pick", "type": "classify", "retry": {"attempts": 2, "backoff_seconds": 0},
         "config": {"by": "keywords", "input": "{{ input.text }}", "branches": {"a": ["apple"]}}},
        {"id": "done", "type": "end", "config": {}}],
     "edges": [{"from": "start", "to": "pick"}, {"from": "pick", "to": "done", "when": "a"}]});
    let workflow = create(&app, &alice.token, failing, false).await;
    let run = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"text": "pear"}}),
    )
    .await;
    let run = run_until(&app, &alice.token, &run, |r| r["status"] == "failed").await;
    assert_eq!(node(&run, "pick")["status"], "failed");
    assert_eq!(node(&run, "pick")["attempts"], 2);
    assert!(
        node(&run, "pick")["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no branch")
    );
    assert_eq!(node(&run, "done")["status"], "skipped");
    assert!(run["error"].as_str().unwrap_or_default().contains("pick"));
}
on_both!(cancel_conditions_delays_and_dry_runs);

/// An active event trigger starts a run per matching event; a schedule fires by itself.
async fn event_and_schedule_triggers(app: TestApp) {
    let alice = app.register("alice").await;
    let agent = app.agent(&alice, json!({})).await;
    let other = app.agent(&alice, json!({})).await;
    let on_message = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "event", "event_type": "chat.message.created",
            "project_id": agent,
            "conditions": {"all": [{"field": "role", "op": "eq", "value": "user"}]}}},
        {"id": "done", "type": "end", "config": {"output": "{{ input.content }} in {{ input.event.type }}"}}],
     "edges": [{"from": "start", "to": "done"}]});
    let workflow = create(&app, &alice.token, on_message, true).await;
    let session = app.create_session(&alice, &agent).await;
    app.post_message(&alice, &session, "Where is my parcel?")
        .await;
    let elsewhere = app.create_session(&alice, &other).await;
    app.post_message(&alice, &elsewhere, "Not for the workflow")
        .await;
    let runs = format!("/api/workflows/{workflow}/runs");
    let run = eventually("an event-started run", || async {
        let r = app.get(&runs, &alice.token).await;
        r.body["items"]
            .as_array()
            .filter(|i| !i.is_empty())
            .map(|i| i[0].clone())
    })
    .await;
    assert_eq!(run["trigger"], "event");
    assert!(run["started_by"].is_null());
    let id = run["id"].as_str().unwrap().to_owned();
    let run = run_until(&app, &alice.token, &id, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "Where is my parcel? in chat.message.created");
    // Only the user's message in that agent's session started a run.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.get(&runs, &alice.token).await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let every_second = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "schedule", "cron": "* * * * * *"}},
        {"id": "done", "type": "end", "config": {"output": "{{ input.scheduled_at }}"}}],
     "edges": [{"from": "start", "to": "done"}]});
    let scheduled = create(&app, &alice.token, every_second.clone(), true).await;
    let runs = format!("/api/workflows/{scheduled}/runs?status=succeeded");
    let fired = eventually("two scheduled runs", || async {
        let r = app.get(&runs, &alice.token).await;
        r.body["items"].as_array().filter(|i| i.len() >= 2).cloned()
    })
    .await;
    assert_eq!(fired[0]["trigger"], "schedule");
    assert_ne!(fired[0]["output"], fired[1]["output"]);
    // Switched off, it stops.
    let r = app
        .put(
            &format!("/api/workflows/{scheduled}"),
            &alice.token,
            json!({"name": "Off", "definition": every_second, "is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let all = format!("/api/workflows/{scheduled}/runs?limit=200");
    let before = app.get(&all, &alice.token).await.body["items"]
        .as_array()
        .map(Vec::len);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        app.get(&all, &alice.token).await.body["items"]
            .as_array()
            .map(Vec::len),
        before
    );
}
on_both!(event_and_schedule_triggers);

/// A host killed with SIGKILL while a run waits at a delay, after an action's effect
/// committed: a restarted host finishes the run, and the finished action is not repeated.
async fn kill_9_mid_run_resumes_without_repeating_an_action(backend: crate::helpers::Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((database_url, pg_database)) =
        crate::helpers::fresh_database(backend, dir.path()).await
    else {
        return;
    };
    let data_dir = dir.path().display().to_string();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("NOVA_DATA_DIR", data_dir.as_str()),
        ("NOVA_JOB_LEASE_SECS", "2"),
    ];
    let (mut first, base) = crate::helpers::start_nova(&env).await;
    let app = TestApp::at(&base);
    let alice = app.register("alice").await;
    let (receiver, seen) =
        crate::helpers::slow_receiver(std::time::Duration::from_millis(10)).await;
    let r = app
        .post(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{receiver}/hooks")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let definition = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "first", "type": "notify", "config": {"plugin_id": "http-crm", "text": "first {{ input.order }}"}},
        {"id": "pause", "type": "delay", "config": {"seconds": 2}},
        {"id": "second", "type": "notify", "config": {"plugin_id": "http-crm", "text": "second {{ input.order }}"}},
        {"id": "done", "type": "end", "config": {"output": "sent"}}],
     "edges": [{"from": "start", "to": "first"}, {"from": "first", "to": "pause"},
               {"from": "pause", "to": "second"}, {"from": "second", "to": "done"}]});
    let workflow = create(&app, &alice.token, definition, false).await;
    let run_id = start(
        &app,
        &alice.token,
        &workflow,
        json!({"input": {"order": 42}}),
    )
    .await;
    run_until(&app, &alice.token, &run_id, |r| {
        node(r, "pause")["status"] == "waiting"
    })
    .await;
    let pid = first.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let _ = first.wait().await;
    assert_eq!(seen.lock().unwrap().len(), 1);

    let (second, base) = crate::helpers::start_nova(&env).await;
    let app = TestApp::at(&base);
    let run = run_until(&app, &alice.token, &run_id, |r| r["status"] == "succeeded").await;
    assert_eq!(run["output"], "sent");
    assert_eq!(node(&run, "first")["attempts"], 1);
    assert_eq!(node(&run, "second")["attempts"], 1);
    let posts = seen.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(
        posts[0].contains("first 42") && posts[1].contains("second 42"),
        "{posts:?}"
    );
    drop(second);
    crate::helpers::drop_database(pg_database).await;
}
on_both!(backend kill_9_mid_run_resumes_without_repeating_an_action);

/// Two hosts on one database drive each run once; the notification socket shows each node
/// as it goes.
async fn two_hosts_run_each_run_once_and_report_live(app: TestApp) {
    let other = app.replica(|_| {}).await;
    let alice = app.register("alice").await;
    let (receiver, seen) = crate::helpers::slow_receiver(std::time::Duration::from_millis(1)).await;
    let r = app
        .post(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{receiver}/hooks")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let definition = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "left", "type": "transform", "config": {"template": "L{{ input.n }}"}},
        {"id": "right", "type": "transform", "config": {"template": "R{{ input.n }}"}},
        {"id": "post", "type": "notify", "config": {"plugin_id": "http-crm",
            "text": "{{ nodes.left.output.text }}-{{ nodes.right.output.text }}"}},
        {"id": "done", "type": "end", "config": {"output": "{{ nodes.post.output }}"}}],
     "edges": [{"from": "start", "to": "left"}, {"from": "start", "to": "right"},
               {"from": "left", "to": "post"}, {"from": "right", "to": "post"},
               {"from": "post", "to": "done"}]});
    let workflow = create(&app, &alice.token, definition, false).await;
    let url = crate::realtime::ticket_url(&app, &alice.token, None).await;
    let mut socket = crate::helpers::connect(&url)
        .await
        .expect("notification socket");

    let mut runs = Vec::new();
    for n in 0..20 {
        let host = if n % 2 == 0 { &app } else { &other };
        runs.push(start(host, &alice.token, &workflow, json!({"input": {"n": n}})).await);
    }
    for run in &runs {
        run_until(&app, &alice.token, run, |r| r["status"] == "succeeded").await;
    }
    let mut posts: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    posts.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("L{n}-R{n}")).collect();
    expected.sort();
    assert_eq!(posts, expected, "each run posted once");

    // The first run's story on the socket: queued → running, each node, then succeeded.
    let first = runs[0].as_str();
    let events = crate::helpers::events_until(&mut socket, |e| {
        e["type"] == "workflow.run" && e["run_id"] == first && e["status"] == "succeeded"
    })
    .await;
    let nodes: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["type"] == "workflow.node" && e["run_id"] == first)
        .map(|e| {
            (
                e["node_id"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for step in [
        ("start", "succeeded"),
        ("left", "succeeded"),
        ("right", "succeeded"),
        ("post", "running"),
        ("post", "succeeded"),
        ("done", "succeeded"),
    ] {
        assert!(
            nodes.contains(&(step.0.to_owned(), step.1.to_owned())),
            "{step:?} not in {nodes:?}"
        );
    }
    other.finish().await;
}
on_both!(two_hosts_run_each_run_once_and_report_live);

/// A `webhook` trigger: the workflow shows its URL, a POST of JSON to it starts a run while
/// the workflow is active; a wrong secret, an inactive workflow or a body that is not JSON
/// start nothing.
async fn webhook_trigger_starts_runs(app: TestApp) {
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let definition = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "webhook"}},
        {"id": "done", "type": "end", "config": {"output": "order {{ input.body.order.id }}"}}],
     "edges": [{"from": "start", "to": "done"}]});
    let workflow = create(&app, &alice.token, definition.clone(), true).await;
    let shown = app
        .get(&format!("/api/workflows/{workflow}"), &alice.token)
        .await;
    let url = shown.body["webhook_url"]
        .as_str()
        .expect("a webhook url")
        .to_owned();
    let path = url.clone();
    assert!(
        path.starts_with(&format!("/api/workflows/{workflow}/hooks/whk_")),
        "{path}"
    );
    assert!(
        app.get(&format!("/api/workflows/{workflow}"), &mallory.token)
            .await
            .status
            == 404
    );

    let r = app
        .call(Method::POST, &path, None, Some(json!({"order": {"id": 7}})))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let run_id = r.body["run_id"].as_str().unwrap().to_owned();
    let run = run_until(&app, &alice.token, &run_id, |r| r["status"] == "succeeded").await;
    assert_eq!(run["trigger"], "webhook");
    assert_eq!(run["output"], "order 7");

    let wrong = format!("/api/workflows/{workflow}/hooks/whk_wrong");
    assert_problem(
        &app.call(Method::POST, &wrong, None, Some(json!({}))).await,
        404,
    );
    let not_json = app
        .raw(
            Method::POST,
            &path,
            "",
            "application/json",
            b"{oops".to_vec(),
        )
        .await;
    assert_problem(&not_json, 422);
    // The secret stays across versions while the trigger stays a webhook; inactive, it stops.
    let r = app
        .put(
            &format!("/api/workflows/{workflow}"),
            &alice.token,
            json!({"name": "Off", "definition": definition, "is_active": false}),
        )
        .await;
    assert_eq!(r.body["webhook_url"].as_str(), Some(url.as_str()));
    assert_problem(
        &app.call(Method::POST, &path, None, Some(json!({}))).await,
        404,
    );
    assert_eq!(
        app.get(&format!("/api/workflows/{workflow}/runs"), &alice.token)
            .await
            .body["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
on_both!(webhook_trigger_starts_runs);
