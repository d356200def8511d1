//! The event log and its consumers: the catalogue, automation rules (CRUD, each trigger end to
//! end with the real plugins, dry runs, loops, cooldowns, tenants, two hosts), integrations
//! subscribed to events, and the activity feed with its permissions and live delivery.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, User, assert_problem, column, connect, drop_database, eventually,
    fresh_database, mock_ai, next_event, recorder, slow_receiver,
};
use crate::on_both;
use crate::realtime::ticket_url;

async fn create_rule(app: &TestApp, user: &User, body: Value) -> String {
    let r = app.post("/api/automations/rules", &user.token, body).await;
    assert_eq!(r.status, 201, "create rule: {:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn runs(app: &TestApp, user: &User, rule: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/automations/rules/{rule}/runs"), &user.token)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// Waits until `rule` has `n` finished runs, then checks no more come within a moment.
async fn finished_runs(app: &TestApp, user: &User, rule: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} runs of {rule}"), move || async move {
        let all = runs(app, user, rule).await;
        (all.len() >= n && all.iter().all(|r| r["status"] != "running")).then_some(all)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let all = runs(app, user, rule).await;
    assert_eq!(all.len(), n, "runs of {rule}: {all:?}");
    all
}

async fn session(app: &TestApp, user: &User, id: &str) -> Value {
    app.get(&format!("/api/chat/sessions/{id}"), &user.token)
        .await
        .body
}

async fn events_catalogue_and_rule_crud(app: TestApp) {
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let eve = app.register("eve").await;
    let types = app.get("/api/events/types", &alice.token).await;
    assert_eq!(types.status, 200);
    let names = column(&types.body, "items", "type");
    for t in [
        "project.created",
        "project.shared",
        "chat.session.escalated",
        "chat.message.created",
        "agent.error",
        "knowledge.upload.completed",
        "team.member.added",
        "integration.installed",
        "automation.rule.fired",
        "analytics.export.completed",
    ] {
        assert!(names.contains(&t), "{t} is in the catalogue");
    }
    let message = types.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "chat.message.created")
        .unwrap();
    assert_eq!(
        message["data_schema"]["properties"]["content"]["type"],
        "string"
    );
    let doc = app.get("/api/openapi.json", &alice.token).await;
    assert!(doc.body["paths"]["/api/automations/rules"].is_object());
    assert!(doc.body["paths"]["/api/team/activity-feed"].is_object());
    for t in &names {
        let schema = &doc.body["components"]["schemas"][format!("EventData.{t}")];
        assert_eq!(schema["type"], "object", "{t} is in the OpenAPI document");
    }
    let message = &doc.body["components"]["schemas"]["EventData.chat.message.created"];
    assert_eq!(
        message["properties"]["content"]["type"], "string",
        "{message:?}"
    );
    assert!(
        message["description"]
            .as_str()
            .unwrap()
            .starts_with("`chat.message.created`")
    );

    // Validation names the bad field.
    let good = json!({"name": "Refunds", "enabled": true,
        "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["refund"]}},
        "actions": [{"type": "escalate_to_human", "parameters": {"reason": "Refund: {{ data.content }}"}}]});
    for (bad, field) in [
        (json!({"trigger": {"type": "sometimes"}}), "trigger/type"),
        (
            json!({"trigger": {"type": "keyword_detected", "conditions": {"keywords": []}}}),
            "trigger/conditions/keywords",
        ),
        (
            json!({"trigger": {"type": "event", "event_type": "no.such"}}),
            "trigger/event_type",
        ),
        (json!({"actions": []}), "actions"),
        (json!({"actions": [{"type": "explode"}]}), "actions/0/type"),
        (
            json!({"actions": [{"type": "escalate_to_human", "parameters": {"reason": "{{ data.x"}}]}),
            "actions/0/parameters/reason",
        ),
        (
            json!({"actions": [{"type": "notify", "parameters": {"plugin_id": "slack", "text": "hi"}}]}),
            "actions/0/parameters/plugin_id",
        ),
        (
            json!({"actions": [{"type": "update_priority", "parameters": {"priority": "asap"}}]}),
            "actions/0/parameters/priority",
        ),
        (
            json!({"actions": [{"type": "send_notification", "parameters": {"roles": ["boss"]}}]}),
            "actions/0/parameters",
        ),
        (json!({"name": ""}), "name"),
        (json!({"cooldown_seconds": 0}), "cooldown_seconds"),
    ] {
        let mut body = good.clone();
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let r = app.post("/api/automations/rules", &alice.token, body).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{:?}", r.body);
    }
    let r = app
        .post(
            "/api/automations/rules",
            &alice.token,
            json!({"name": "x", "trigger": {"type": "event"}, "actions": [], "colour": 1}),
        )
        .await;
    assert_problem(&r, 422);

    let id = create_rule(&app, &alice, good.clone()).await;
    let r = app
        .get(&format!("/api/automations/rules/{id}"), &alice.token)
        .await;
    assert_eq!(r.body["trigger"]["type"], "keyword_detected");
    assert_eq!(r.body["actions"][0]["type"], "escalate_to_human");
    assert_eq!(r.body["version"], 1);
    // Members read, admins write, strangers see nothing.
    let add = app
        .post(
            &format!("/api/team/workspaces/{}/members", alice.workspace_id),
            &alice.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await;
    assert_eq!(add.status, 201, "{:?}", add.body);
    assert_eq!(
        app.get(&format!("/api/automations/rules/{id}"), &carol.token)
            .await
            .status,
        200
    );
    let listed = app.get("/api/automations/rules", &carol.token).await;
    assert_eq!(column(&listed.body, "items", "id"), vec![id.as_str()]);
    assert_problem(
        &app.put(
            &format!("/api/automations/rules/{id}"),
            &carol.token,
            good.clone(),
        )
        .await,
        403,
    );
    assert_problem(
        &app.delete(&format!("/api/automations/rules/{id}"), &carol.token)
            .await,
        403,
    );
    let mut theirs = good.clone();
    theirs["workspace_id"] = json!(alice.workspace_id);
    assert_problem(
        &app.post("/api/automations/rules", &carol.token, theirs)
            .await,
        403,
    );
    assert_problem(
        &app.get(&format!("/api/automations/rules/{id}"), &eve.token)
            .await,
        404,
    );
    assert!(
        column(
            &app.get("/api/automations/rules", &eve.token).await.body,
            "items",
            "id"
        )
        .is_empty()
    );

    // PUT replaces the rule; a stale version is a 409.
    let mut changed = good.clone();
    changed["enabled"] = json!(false);
    changed["version"] = json!(1);
    let r = app
        .put(
            &format!("/api/automations/rules/{id}"),
            &alice.token,
            changed.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["enabled"], false);
    assert_problem(
        &app.put(
            &format!("/api/automations/rules/{id}"),
            &alice.token,
            changed,
        )
        .await,
        409,
    );
    // Filters and pages.
    let second = create_rule(&app, &alice, good.clone()).await;
    let enabled = app
        .get("/api/automations/rules?enabled=true", &alice.token)
        .await;
    assert_eq!(column(&enabled.body, "items", "id"), vec![second.as_str()]);
    let page = app
        .get("/api/automations/rules?limit=1", &alice.token)
        .await;
    assert_eq!(column(&page.body, "items", "id"), vec![second.as_str()]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/api/automations/rules?limit=1&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(column(&next.body, "items", "id"), vec![id.as_str()]);
    assert_eq!(
        app.delete(&format!("/api/automations/rules/{id}"), &alice.token)
            .await
            .status,
        204
    );
    assert_problem(
        &app.get(&format!("/api/automations/rules/{id}"), &alice.token)
            .await,
        404,
    );
}
on_both!(events_catalogue_and_rule_crud);

async fn keyword_rule_escalates_and_notifies_through_plugins(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (crm, seen) = recorder().await;
    let r = app
        .post(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{crm}/hooks/nova")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let rule = create_rule(
        &app,
        &alice,
        json!({"name": "Refunds go to a human", "enabled": true, "cooldown_seconds": 3600,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["refund"], "role": "user"}},
            "actions": [
                {"type": "escalate_to_human", "parameters": {"reason": "asked for a refund"}},
                {"type": "notify", "parameters": {"plugin_id": "http-crm", "title": "Escalated: {{ data.session_id }}", "text": "{{ data.content }}", "severity": "warning"}}
            ]}),
    )
    .await;
    // Bob's rule on the same word never sees Alice's messages.
    let bobs_rule = create_rule(
        &app,
        &bob,
        json!({"name": "Bob's", "enabled": true,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["refund"]}},
            "actions": [{"type": "send_notification", "parameters": {"title": "refund"}}]}),
    )
    .await;
    let agent = app.agent(&alice, json!({})).await;
    let session_id = app.create_session(&alice, &agent).await;

    // The dry run shows what would happen, and does nothing.
    let dry = app
        .post(
            &format!("/api/automations/rules/{rule}/test"),
            &alice.token,
            json!({"event": {"type": "chat.message.created", "data": {"session_id": session_id, "role": "user", "content": "I want a REFUND"}}}),
        )
        .await;
    assert_eq!(dry.status, 200, "{:?}", dry.body);
    assert_eq!(dry.body["matched"], true);
    assert_eq!(
        dry.body["actions"][1]["parameters"]["title"],
        format!("Escalated: {session_id}")
    );
    assert_eq!(
        dry.body["actions"][1]["parameters"]["text"],
        "I want a REFUND"
    );
    let miss = app
        .post(
            &format!("/api/automations/rules/{rule}/test"),
            &alice.token,
            json!({"event": {"type": "chat.message.created", "data": {"role": "user", "content": "refunds"}}}),
        )
        .await;
    assert_eq!(miss.body["matched"], false);
    assert!(miss.body["actions"].as_array().unwrap().is_empty());
    assert_eq!(session(&app, &alice, &session_id).await["status"], "active");
    assert!(seen.lock().unwrap().is_empty());
    assert!(runs(&app, &alice, &rule).await.is_empty());

    // A message that does not match fires nothing; one that does escalates and posts.
    app.post_message(&alice, &session_id, "hello there").await;
    app.post_message(&alice, &session_id, "I want a Refund now")
        .await;
    let done = finished_runs(&app, &alice, &rule, 1).await;
    assert_eq!(done[0]["status"], "succeeded", "{:?}", done[0]);
    assert_eq!(done[0]["actions"][0]["status"], "succeeded");
    assert_eq!(
        session(&app, &alice, &session_id).await["status"],
        "escalated"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one post to the CRM");
        let sent: Value = serde_json::from_str(&seen[0].1).unwrap();
        assert_eq!(sent["title"], format!("Escalated: {session_id}"));
        assert_eq!(sent["text"], "I want a Refund now");
    }
    // Cooldown: another refund message in the same session fires nothing more.
    app.post_message(&alice, &session_id, "refund refund refund")
        .await;
    finished_runs(&app, &alice, &rule, 1).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(runs(&app, &bob, &bobs_rule).await.is_empty());
    // A rule's firing is an event too.
    let feed = app
        .get("/api/team/activity-feed?type=automation.", &alice.token)
        .await;
    assert_eq!(
        feed.body["items"][0]["type"], "automation.rule.fired",
        "{:?}",
        feed.body
    );
    assert_eq!(feed.body["items"][0]["actor"]["type"], "rule");
    assert_eq!(
        feed.body["items"][0]["actor"]["name"],
        "Refunds go to a human"
    );
}
on_both!(keyword_rule_escalates_and_notifies_through_plugins);

async fn sentiment_response_time_and_event_triggers(app: TestApp) {
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let r = app
        .post(
            &format!("/api/team/workspaces/{}/members", alice.workspace_id),
            &alice.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let agent = app.agent(&alice, json!({})).await;
    let angry = create_rule(
        &app,
        &alice,
        json!({"name": "Angry customers first", "enabled": true,
            "trigger": {"type": "sentiment_negative", "conditions": {"threshold": -0.3}},
            "actions": [{"type": "update_priority", "parameters": {"priority": "urgent"}}]}),
    )
    .await;
    let session_id = app.create_session(&alice, &agent).await;
    app.post_message(&alice, &session_id, "Thanks, that was great")
        .await;
    app.post_message(
        &alice,
        &session_id,
        "This is terrible, awful and useless. I hate it.",
    )
    .await;
    finished_runs(&app, &alice, &angry, 1).await;
    assert_eq!(
        session(&app, &alice, &session_id).await["priority"],
        "urgent"
    );

    // A slow reply (the mock model takes 5 s) fires response_time_high.
    let slow_agent = app.agent(&alice, json!({})).await;
    let r = app
        .put(
            &format!("/api/projects/{slow_agent}/provider"),
            &alice.token,
            json!({"base_url": mock_ai(), "model": "slow", "stream": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let slow = create_rule(
        &app,
        &alice,
        json!({"name": "Slow replies", "enabled": true, "project_ids": [slow_agent],
            "trigger": {"type": "response_time_high", "conditions": {"threshold_seconds": 4}},
            "actions": [{"type": "escalate_to_human", "parameters": {"reason": "too slow"}}]}),
    )
    .await;
    // An `event` rule on agent errors notifies the workspace live.
    let failing = app.agent(&alice, json!({})).await;
    app.put(
        &format!("/api/projects/{failing}/provider"),
        &alice.token,
        json!({"base_url": mock_ai(), "model": "fail", "stream": false}),
    )
    .await;
    let errors = create_rule(
        &app,
        &alice,
        json!({"name": "Agent errors", "enabled": true,
            "trigger": {"type": "event", "event_type": "agent.error", "conditions": {"all": [{"field": "error", "op": "exists"}]}},
            "actions": [{"type": "send_notification", "parameters": {"title": "Agent error", "message": "{{ data.error }}", "roles": ["owner", "admin"]}}]}),
    )
    .await;
    let mut socket = connect(&ticket_url(&app, &alice.token, None).await)
        .await
        .expect("notification socket");
    let mut carols = connect(&ticket_url(&app, &carol.token, None).await)
        .await
        .expect("carol's notification socket");
    let slow_session = app.create_session(&alice, &slow_agent).await;
    let failing_session = app.create_session(&alice, &failing).await;
    let (slow_reply, failed) = tokio::join!(
        app.post_message(&alice, &slow_session, "hello"),
        app.post_message(&alice, &failing_session, "hello")
    );
    assert_eq!(slow_reply.status, 201);
    assert_eq!(failed.status, 502);
    finished_runs(&app, &alice, &slow, 1).await;
    assert_eq!(
        session(&app, &alice, &slow_session).await["status"],
        "escalated"
    );
    // The other agent's replies are fast, and the rule is for the slow agent only.
    assert_eq!(session(&app, &alice, &session_id).await["status"], "active");
    finished_runs(&app, &alice, &errors, 1).await;
    loop {
        let event = next_event(&mut socket).await;
        if event["kind"] == "plugin.notification" {
            assert_eq!(event["title"], "Agent error");
            assert!(!event["message"].as_str().unwrap().is_empty(), "{event:?}");
            break;
        }
    }
    // Carol is a member, not an admin: the notification was not for her.
    while let Ok(event) =
        tokio::time::timeout(Duration::from_millis(500), next_event(&mut carols)).await
    {
        assert_ne!(event["kind"], "plugin.notification", "{event:?}");
    }
}
on_both!(sentiment_response_time_and_event_triggers);

async fn a_loop_of_two_rules_stops_at_depth_three(app: TestApp) {
    let alice = app.register("alice").await;
    let agent = app.agent(&alice, json!({})).await;
    let start = create_rule(
        &app,
        &alice,
        json!({"name": "Start", "enabled": true,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["loop"]}},
            "actions": [{"type": "send_notification", "parameters": {"title": "start"}}]}),
    )
    .await;
    let on_fired = |name: &str, others: Vec<&str>| {
        json!({"name": name, "enabled": true,
            "trigger": {"type": "event", "event_type": "automation.rule.fired",
                "conditions": {"any": others.iter().map(|o| json!({"field": "rule_id", "op": "eq", "value": o})).collect::<Vec<_>>()}},
            "actions": [{"type": "send_notification", "parameters": {"title": name}}]})
    };
    // A fires after Start or B; B after A: without a limit they would fire for ever.
    let a = create_rule(&app, &alice, on_fired("A", vec![start.as_str()])).await;
    let b = create_rule(&app, &alice, on_fired("B", vec![a.as_str()])).await;
    let mut body = on_fired("A", vec![start.as_str(), b.as_str()]);
    body["version"] = json!(1);
    let r = app
        .put(&format!("/api/automations/rules/{a}"), &alice.token, body)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let session_id = app.create_session(&alice, &agent).await;
    app.post_message(&alice, &session_id, "let's loop").await;
    // Start (depth 0), A (1), B (2); A would fire at depth 3, and does not.
    let start_runs = finished_runs(&app, &alice, &start, 1).await;
    assert_eq!(start_runs[0]["depth"], 0);
    let a_runs = finished_runs(&app, &alice, &a, 1).await;
    assert_eq!(a_runs[0]["depth"], 1);
    let b_runs = finished_runs(&app, &alice, &b, 1).await;
    assert_eq!(b_runs[0]["depth"], 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs(&app, &alice, &a).await.len(), 1);
}
on_both!(a_loop_of_two_rules_stops_at_depth_three);

async fn integrations_subscribed_to_events_are_notified(app: TestApp) {
    let alice = app.register("alice").await;
    // A local server stands in for Slack: `hooks.slack.com` resolves to it (NOVA_RESOLVE).
    let (stand_in, seen) = recorder().await;
    let port = stand_in.rsplit(':').next().unwrap();
    let webhook = format!("http://hooks.slack.com:{port}/services/T000/B000/XXXX");
    let install = |events: Value| json!({"config": {"webhook_url": webhook}, "events": events});
    let r = app
        .post(
            "/api/integrations/slack/install",
            &alice.token,
            install(json!(["agent.nope"])),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "events/0");
    let r = app
        .post(
            "/api/integrations/keyword-tagger/install",
            &alice.token,
            json!({"events": ["agent.*"]}),
        )
        .await;
    assert_problem(&r, 422);
    let r = app
        .post(
            "/api/integrations/slack/install",
            &alice.token,
            install(json!(["agent.*", "chat.session.escalated"])),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["installation"]["events"],
        json!(["agent.*", "chat.session.escalated"])
    );
    let failing = app.agent(&alice, json!({})).await;
    app.put(
        &format!("/api/projects/{failing}/provider"),
        &alice.token,
        json!({"base_url": mock_ai(), "model": "fail", "stream": false}),
    )
    .await;
    let session_id = app.create_session(&alice, &failing).await;
    assert_eq!(
        app.post_message(&alice, &session_id, "hello").await.status,
        502
    );
    let r = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/chat/sessions/{session_id}"),
            Some(&alice.token),
            Some(json!({"status": "escalated"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let log = &seen;
    let posts = eventually("two posts to Slack", move || async move {
        let seen = log.lock().unwrap();
        (seen.len() >= 2).then(|| {
            seen.iter()
                .map(|(h, b)| {
                    (
                        h["host"].to_str().unwrap().to_owned(),
                        serde_json::from_str::<Value>(b).unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        })
    })
    .await;
    assert_eq!(posts[0].0, format!("hooks.slack.com:{port}"));
    let error_post = posts[0].1["text"].as_str().unwrap();
    assert!(error_post.starts_with("Agent error: "), "{error_post}");
    assert!(error_post.contains("could not answer"), "{error_post}");
    let blocks = posts[0].1["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(blocks.starts_with(":red_circle: *Agent error*"), "{blocks}");
    assert!(
        blocks.contains(&format!(
            "<https://nova.example.com/api/chat/sessions/{session_id}|Open in Nova>"
        )),
        "{blocks}"
    );
    assert_eq!(
        posts[1].1["text"],
        "Chat session escalated: alice escalated the chat New conversation"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(seen.lock().unwrap().len(), 2, "only the subscribed types");
}
on_both!(integrations_subscribed_to_events_are_notified, |c| {
    c.resolve = vec![("hooks.slack.com".into(), [127, 0, 0, 1].into())];
    c.public_url = Some("https://nova.example.com".into());
});

async fn the_feed_shows_each_reader_what_they_may_see(app: TestApp) {
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let eve = app.register("eve").await;
    let r = app
        .post(
            &format!("/api/team/workspaces/{}/members", alice.workspace_id),
            &alice.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let mut live = connect(&ticket_url(&app, &dave.token, None).await)
        .await
        .expect("dave's notifications");
    let shared = app.project(&alice, json!({"name": "Support Bot"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let private = app.project(&alice, json!({"name": "Internal"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.share(&alice, &shared, &dave, "view").await;
    let session_id = app.create_session(&alice, &shared).await;
    app.post_message(&alice, &session_id, "secret words").await;
    app.create_session(&alice, &private).await;

    let feed = |user: &User, query: &str| {
        let path = format!("/api/team/activity-feed{query}");
        let token = user.token.clone();
        let app = app.clone();
        async move {
            let r = app.get(&path, &token).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.body
        }
    };
    let (feed, by) = (&feed, &alice);
    let everything = eventually("the feed", move || async move {
        let body = feed(by, "").await;
        (body["items"].as_array().unwrap().len() >= 8).then_some(body)
    })
    .await;
    let types = column(&everything, "items", "type");
    assert_eq!(
        types,
        vec![
            "chat.session.created",
            "chat.message.created",
            "chat.message.created",
            "chat.session.created",
            "project.shared",
            "project.created",
            "project.created",
            "team.member.added",
        ]
    );
    let shared_item = &everything["items"][4];
    assert_eq!(
        shared_item["summary"],
        "alice shared Support Bot with dave@example.com (view)"
    );
    assert_eq!(shared_item["actor"]["name"], "alice");
    assert_eq!(shared_item["subject"]["name"], "Support Bot");
    // Message content stays out of the feed.
    assert!(!everything.to_string().contains("secret words"));
    assert!(everything["items"][2]["data"].get("content").is_none());
    assert_eq!(
        everything["items"][2]["summary"],
        "alice posted a message in New conversation"
    );
    // The member sees the same; the share's viewer only the shared project's events.
    assert_eq!(
        column(&feed(&carol, "").await, "items", "id"),
        column(&everything, "items", "id")
    );
    let daves = feed(&dave, "").await;
    assert_eq!(
        column(&daves, "items", "type"),
        vec![
            "chat.message.created",
            "chat.message.created",
            "chat.session.created",
            "project.shared",
            "project.created"
        ]
    );
    assert!(
        daves["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["project_id"] == shared.as_str())
    );
    assert!(feed(&eve, "").await["items"].as_array().unwrap().is_empty());
    // Filters: a type prefix, a project, an actor, and pages.
    assert_eq!(
        column(&feed(&alice, "?type=chat.session.*").await, "items", "type"),
        vec!["chat.session.created"; 2]
    );
    assert_eq!(
        feed(&alice, &format!("?project_id={private}")).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        feed(&alice, &format!("?actor_id={}", carol.id)).await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let first = feed(&alice, "?limit=3").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = feed(&alice, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(
        column(&second, "items", "id"),
        column(&everything, "items", "id")[3..6].to_vec()
    );
    assert_problem(
        &app.get(
            &format!(
                "/api/team/activity-feed?workspace_id={}",
                alice.workspace_id
            ),
            &eve.token,
        )
        .await,
        422,
    );
    // Live: the same items reach the viewer's notification socket, and only those.
    // (Its creation reached the viewer only if it was delivered after the share.)
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let event = next_event(&mut live).await;
        if event["type"] == "activity" && event["item"]["type"] != "project.created" {
            kinds.push(event["item"]["type"].as_str().unwrap().to_owned());
            assert_eq!(event["item"]["project_id"], shared.as_str());
            assert!(!event.to_string().contains("secret words"));
        }
    }
    assert_eq!(
        kinds,
        vec![
            "project.shared",
            "chat.session.created",
            "chat.message.created",
            "chat.message.created"
        ]
    );
}
on_both!(the_feed_shows_each_reader_what_they_may_see);

async fn two_hosts_fire_each_rule_once_per_event(app: TestApp) {
    let second = app.replica(|_| {}).await;
    let alice = app.register("alice").await;
    let (crm, seen) = recorder().await;
    app.post(
        "/api/integrations/http-crm/install",
        &alice.token,
        json!({"config": {"endpoint": format!("{crm}/hooks")}, "http_hosts": ["127.0.0.1"]}),
    )
    .await;
    let rule = create_rule(
        &app,
        &alice,
        json!({"name": "Every question", "enabled": true,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["question"], "role": "user"}},
            "actions": [{"type": "notify", "parameters": {"plugin_id": "http-crm", "text": "{{ data.message_id }}"}}]}),
    )
    .await;
    let agent = app.agent(&alice, json!({})).await;
    let session_id = app.create_session(&alice, &agent).await;
    for i in 0..10 {
        let host = if i % 2 == 0 { &app } else { &second };
        let r = host
            .post_message(&alice, &session_id, &format!("question {i}"))
            .await;
        assert_eq!(r.status, 201);
    }
    finished_runs(&app, &alice, &rule, 10).await;
    let posts: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(posts.len(), 10, "one post per message: {posts:?}");
    second.finish().await;
}
on_both!(two_hosts_fire_each_rule_once_per_event);

/// A host killed with SIGKILL while a rule's effect is under way, with a later event waiting
/// behind it: after a restart the waiting event's rule fires once, and the interrupted run is
/// finished (once).
async fn kill_9_between_the_change_and_the_rule_applies_the_effect_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((database_url, pg_database)) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let data_dir = dir.path().display().to_string();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("NOVA_DATA_DIR", data_dir.as_str()),
        ("NOVA_JOB_LEASE_SECS", "2"),
        ("NOVA_PLUGIN_TIMEOUT_MS", "20000"),
    ];
    let (mut first, base) = crate::helpers::start_nova(&env).await;
    let app = TestApp::at(&base);
    let alice = app.register("alice").await;
    let (receiver, seen) = slow_receiver(Duration::from_secs(4)).await;
    let r = app
        .post(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{receiver}/hooks")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let slow = create_rule(
        &app,
        &alice,
        json!({"name": "Slow post", "enabled": true,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["first"]}},
            "actions": [{"type": "notify", "parameters": {"plugin_id": "http-crm", "text": "{{ data.content }}"}}]}),
    )
    .await;
    let escalate = create_rule(
        &app,
        &alice,
        json!({"name": "Escalate", "enabled": true,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": ["second"], "role": "user"}},
            "actions": [{"type": "escalate_to_human", "parameters": {}}]}),
    )
    .await;
    let agent = app.agent(&alice, json!({})).await;
    let one = app.create_session(&alice, &agent).await;
    let two = app.create_session(&alice, &agent).await;
    assert_eq!(
        app.post_message(&alice, &one, "the first").await.status,
        201
    );
    let log = &seen;
    eventually("the slow post to start", move || async move {
        (!log.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // Committed, and its rule not yet run: the consumer is busy with the slow post.
    assert_eq!(
        app.post_message(&alice, &two, "the second").await.status,
        201
    );
    assert_eq!(session(&app, &alice, &two).await["status"], "active");
    let pid = first.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let _ = first.wait().await;

    let (second, base) = crate::helpers::start_nova(&env).await;
    let app = TestApp::at(&base);
    eventually("the escalation after the restart", || {
        let app = app.clone();
        let alice = alice.clone();
        let two = two.clone();
        async move { (session(&app, &alice, &two).await["status"] == "escalated").then_some(()) }
    })
    .await;
    let escalations = finished_runs(&app, &alice, &escalate, 1).await;
    assert_eq!(escalations[0]["status"], "succeeded");
    let posts = finished_runs(&app, &alice, &slow, 1).await;
    assert_eq!(posts[0]["status"], "succeeded", "{:?}", posts[0]);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the interrupted post was made again, once"
    );
    drop(second);
    drop_database(pg_database).await;
}

on_both!(backend kill_9_between_the_change_and_the_rule_applies_the_effect_once);
