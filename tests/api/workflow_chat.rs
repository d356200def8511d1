//! A workflow that answers an agent's chat: each user message starts a run, and the run's
//! end posts the agent's reply (or its failure) to the session, once.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, eventually};
use crate::on_both;
use crate::workflows::{create, node, run_until};

/// Messages of a session once it holds `count` of them.
async fn messages_once(app: &TestApp, token: &str, session: &str, count: usize) -> Vec<Value> {
    let path = format!("/api/chat/sessions/{session}/messages");
    eventually("the workflow's reply", || async {
        let r = app.get(&path, token).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= count).then_some(items)
    })
    .await
}

async fn a_workflow_answers_its_agents_chat(app: TestApp) {
    let alice = app.register("alice").await;
    let front = app.agent(&alice, json!({})).await;
    let billing = app.agent(&alice, json!({})).await;
    let support = app.agent(&alice, json!({})).await;
    app.answer_with_echo(&alice, &support).await;
    let trigger = |reply: Value| {
        json!({"kind": "event", "event_type": "chat.message.created", "project_id": front,
               "reply": reply})
    };
    // No default branch: a message about neither fails the classify node, and the run.
    let definition = |reply: Value| {
        json!({"nodes": [
            {"id": "start", "type": "trigger", "config": trigger(reply)},
            {"id": "triage", "type": "classify", "config": {"by": "keywords", "input": "{{ input.content }}",
                "branches": {"billing": ["refund"], "support": ["broken"]}}},
            {"id": "billing", "type": "agent", "config": {"project_id": billing, "input": "{{ input.content }}"}},
            {"id": "support", "type": "agent", "config": {"project_id": support, "input": "{{ input.content }}"}},
            {"id": "done", "type": "end", "config": {"output": "{{ nodes.billing.output.text }}{{ nodes.support.output.text }}"}}],
         "edges": [
            {"from": "start", "to": "triage"},
            {"from": "triage", "to": "billing", "when": "billing"},
            {"from": "triage", "to": "support", "when": "support"},
            {"from": "billing", "to": "done"}, {"from": "support", "to": "done"}]})
    };

    // `reply` needs a chat message trigger for one agent.
    let mut manual = definition(json!(true));
    manual["nodes"][0]["config"] = json!({"kind": "manual", "reply": true});
    let r = app
        .post(
            "/api/workflows/validate",
            &alice.token,
            json!({"definition": manual}),
        )
        .await;
    assert_problem(&r, 422);
    assert!(
        r.body["errors"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["field"] == "definition/nodes/0/config/reply")),
        "{:?}",
        r.body
    );

    let workflow = create(&app, &alice.token, definition(json!(true)), true).await;
    // One active workflow answers an agent.
    let r = app
        .post(
            "/api/workflows",
            &alice.token,
            json!({"name": "Second", "definition": definition(json!(true)), "is_active": true}),
        )
        .await;
    assert_problem(&r, 409);

    let session = app.create_session(&alice, &front).await;
    let r = app
        .post_message(&alice, &session, "I want a refund please")
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(r.body["reply"].is_null(), "{:?}", r.body);
    assert_eq!(r.body["workflow_id"], workflow.as_str());
    assert_eq!(r.body["message"]["seq"], 1);
    let messages = messages_once(&app, &alice.token, &session, 2).await;
    let reply = &messages[1];
    assert_eq!(reply["role"], "agent");
    assert_eq!(reply["status"], "ok");
    assert!(
        reply["content"]
            .as_str()
            .is_some_and(|c| c.contains("can't answer that yet")),
        "the billing agent's fallback: {reply:?}"
    );
    // The reply's id is the run's, which started from the user's message.
    let run_id = reply["id"].as_str().unwrap().to_owned();
    let run = run_until(&app, &alice.token, &run_id, |r| r["status"] == "succeeded").await;
    assert_eq!(run["trigger"], "event");
    assert_eq!(run["input"]["content"], "I want a refund please");
    assert_eq!(node(&run, "support")["status"], "skipped");

    let r = app
        .post_message(&alice, &session, "The app is broken")
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let messages = messages_once(&app, &alice.token, &session, 4).await;
    assert_eq!(messages[3]["content"], "You said: The app is broken");
    assert_eq!(messages[3]["role"], "agent");

    // A run that fails still answers, with a reply of status `error`.
    let r = app.post_message(&alice, &session, "Hello there").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let messages = messages_once(&app, &alice.token, &session, 6).await;
    assert_eq!(messages[5]["status"], "error", "{:?}", messages[5]);
    assert!(
        messages[5]["content"]
            .as_str()
            .is_some_and(|c| c.contains("could not answer")),
        "{:?}",
        messages[5]
    );

    // One run per user message: the agent's replies started none, and none was posted twice.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let runs = app
        .get(&format!("/api/workflows/{workflow}/runs"), &alice.token)
        .await;
    assert_eq!(runs.body["items"].as_array().map(Vec::len), Some(3));
    let messages = messages_once(&app, &alice.token, &session, 6).await;
    assert_eq!(messages.len(), 6, "{messages:?}");

    // A manual run of the same workflow posts nowhere, whatever its input names.
    let r = app
        .post(
            &format!("/api/workflows/{workflow}/run"),
            &alice.token,
            json!({"input": {"content": "refund", "session_id": session, "message_id": run_id,
                             "project_id": front}}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let manual_run = r.body["id"].as_str().unwrap().to_owned();
    run_until(&app, &alice.token, &manual_run, |r| {
        r["status"] == "succeeded"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let messages = messages_once(&app, &alice.token, &session, 6).await;
    assert_eq!(messages.len(), 6, "{messages:?}");

    // Switched off, the workflow leaves the agent to answer by itself again.
    let r = app
        .put(
            &format!("/api/workflows/{workflow}"),
            &alice.token,
            json!({"name": "Flow", "definition": definition(json!(true)), "is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.post_message(&alice, &session, "A refund?").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["reply"]["role"], "agent");
    assert!(r.body.get("workflow_id").is_none(), "{:?}", r.body);
}
on_both!(a_workflow_answers_its_agents_chat);
