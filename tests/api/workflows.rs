//! Workflow definitions: the README's example saved and versioned, validation that points at
//! the node and field, lists, and who may see and delete a workflow.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};
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
