use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, User, assert_problem, column, connect, mock_ai, next_event_of};
use crate::on_both;

/// Alice, her agent (no provider, a fallback message) and a session of hers with it.
struct Conversation {
    alice: User,
    agent_id: String,
    id: String,
    path: String,
}

impl Conversation {
    async fn start(app: &TestApp) -> Conversation {
        let alice = app.register("alice").await;
        let agent_id = app
            .agent(
                &alice,
                json!({"fallback_message": "Let me find a colleague for that."}),
            )
            .await;
        let id = app.create_session(&alice, &agent_id).await;
        Conversation {
            path: format!("/api/chat/sessions/{id}"),
            alice,
            agent_id,
            id,
        }
    }
}

async fn a_session_starts_active_with_the_title_and_priority_asked(app: TestApp) {
    let alice = app.register("alice").await;
    let agent_id = app.agent(&alice, json!({})).await;
    let created = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"agent_id": agent_id, "title": "Billing question", "priority": "high"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["title"], "Billing question");
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["priority"], "high");
    assert_eq!(created.body["config_version"], 1);
    assert_eq!(created.body["last_seq"], 0);
    // `project_id` names the agent too, in the body and in the list's filter.
    let by_project_id = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"project_id": agent_id}),
        )
        .await;
    assert_eq!(by_project_id.status, 201, "{:?}", by_project_id.body);
    assert_eq!(by_project_id.body["agent_id"], agent_id.as_str());
    let listed = app
        .get(
            &format!("/api/chat/sessions/active?project_id={agent_id}"),
            &alice.token,
        )
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let other_agent = app.agent(&alice, json!({})).await;
    app.create_session(&alice, &other_agent).await;
    let listed = app
        .get(
            &format!("/api/chat/sessions/active?project_id={agent_id}"),
            &alice.token,
        )
        .await;
    let agents = crate::helpers::column(&listed.body, "sessions", "agent_id");
    assert_eq!(
        agents,
        [agent_id.as_str(), agent_id.as_str()],
        "{:?}",
        listed.body
    );
}
on_both!(a_session_starts_active_with_the_title_and_priority_asked);

async fn without_a_provider_the_agent_gives_its_fallback_marked_unanswered(app: TestApp) {
    let c = Conversation::start(&app).await;
    let sent = app
        .post_message(&c.alice, &c.id, "Why was I charged twice?")
        .await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    assert_eq!(sent.body["message"]["seq"], 1);
    assert_eq!(sent.body["message"]["role"], "user");
    assert_eq!(sent.body["message"]["author_id"], c.alice.id);
    assert_eq!(sent.body["reply"]["seq"], 2);
    assert_eq!(sent.body["reply"]["role"], "agent");
    assert_eq!(
        sent.body["reply"]["content"],
        "Let me find a colleague for that."
    );
    assert_eq!(sent.body["reply"]["status"], "unanswered");
    assert!(sent.body["reply"]["latency_ms"].is_i64());
}
on_both!(without_a_provider_the_agent_gives_its_fallback_marked_unanswered);

async fn empty_oversize_and_unknown_message_bodies_are_refused(app: TestApp) {
    let c = Conversation::start(&app).await;
    for bad in [
        json!({"content": "  "}),
        json!({"content": "x".repeat(20_001)}),
        json!({"text": "hi"}),
    ] {
        assert_problem(
            &app.post(&format!("{}/messages", c.path), &c.alice.token, bad)
                .await,
            422,
        );
    }
    let all = app
        .get(&format!("{}/messages", c.path), &c.alice.token)
        .await;
    assert!(all.body["items"].as_array().unwrap().is_empty());
}
on_both!(empty_oversize_and_unknown_message_bodies_are_refused);

async fn messages_page_in_sequence_order(app: TestApp) {
    let c = Conversation::start(&app).await;
    app.post_message(&c.alice, &c.id, "First question").await;
    app.post_message(&c.alice, &c.id, "Second question").await;
    let all = app
        .get(&format!("{}/messages", c.path), &c.alice.token)
        .await;
    assert_eq!(all.status, 200);
    let seqs: Vec<i64> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let since = app
        .get(
            &format!("{}/messages?since=2&limit=1", c.path),
            &c.alice.token,
        )
        .await;
    assert_eq!(since.body["items"][0]["seq"], 3);
    let cursor = since.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("{}/messages?limit=1&cursor={cursor}", c.path),
            &c.alice.token,
        )
        .await;
    assert_eq!(next.body["items"][0]["seq"], 4);
    assert!(next.body["next_cursor"].is_null());
}
on_both!(messages_page_in_sequence_order);

async fn only_agent_replies_are_rated_from_1_to_5(app: TestApp) {
    let c = Conversation::start(&app).await;
    let sent = app.post_message(&c.alice, &c.id, "Hello?").await;
    let reply_id = sent.body["reply"]["id"].as_str().unwrap();
    let user_msg_id = sent.body["message"]["id"].as_str().unwrap();
    let rated = app
        .post(
            &format!("{}/messages/{reply_id}/rating", c.path),
            &c.alice.token,
            json!({"rating": 2, "comment": "not helpful"}),
        )
        .await;
    assert_eq!(rated.status, 200, "{:?}", rated.body);
    assert_eq!(rated.body["rating"], 2);
    assert_eq!(rated.body["rating_comment"], "not helpful");
    for (message, rating) in [(reply_id, 6), (reply_id, 0), (user_msg_id, 5)] {
        assert_problem(
            &app.post(
                &format!("{}/messages/{message}/rating", c.path),
                &c.alice.token,
                json!({"rating": rating}),
            )
            .await,
            422,
        );
    }
}
on_both!(only_agent_replies_are_rated_from_1_to_5);

async fn a_stranger_can_neither_read_write_rate_nor_join(app: TestApp) {
    let c = Conversation::start(&app).await;
    let bob = app.register("bob").await;
    let sent = app.post_message(&c.alice, &c.id, "Hello?").await;
    let reply_id = sent.body["reply"]["id"].as_str().unwrap();
    let path = &c.path;
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::GET, format!("{path}/messages"), None),
        (
            Method::POST,
            format!("{path}/messages"),
            Some(json!({"content": "hi"})),
        ),
        (
            Method::POST,
            format!("{path}/messages/{reply_id}/rating"),
            Some(json!({"rating": 5})),
        ),
        (Method::POST, format!("{path}/join"), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"status": "closed"})),
        ),
    ] {
        let r = app.call(method, &p, Some(&bob.token), body).await;
        assert_problem(&r, 404);
    }
    assert_problem(
        &app.post(
            "/api/chat/sessions",
            &bob.token,
            json!({"agent_id": c.agent_id}),
        )
        .await,
        422,
    );
}
on_both!(a_stranger_can_neither_read_write_rate_nor_join);

async fn someone_the_agent_is_shared_with_joins_and_sees_unread_counts(app: TestApp) {
    let c = Conversation::start(&app).await;
    let vic = app.register("vic").await;
    app.post_message(&c.alice, &c.id, "First question").await;
    app.post_message(&c.alice, &c.id, "Second question").await;
    app.share(&c.alice, &c.agent_id, &vic, "view").await;
    // Seeing the agent is not taking part in the session: joining is.
    assert_problem(&app.get(&c.path, &vic.token).await, 404);
    let joined = app
        .post(&format!("{}/join", c.path), &vic.token, json!({}))
        .await;
    assert_eq!(joined.status, 200, "{:?}", joined.body);
    assert!(
        joined.body["websocket_url"]
            .as_str()
            .unwrap()
            .contains(&format!("/ws/chat/{}?ticket=", c.id))
    );
    assert!(joined.body["ticket"].is_string());
    assert_eq!(app.get(&c.path, &vic.token).await.status, 200);

    // The tabs: last message and unread count (others' messages after the read position).
    let tabs = app.get("/api/chat/sessions/active", &vic.token).await;
    assert_eq!(tabs.status, 200, "{:?}", tabs.body);
    assert_eq!(tabs.body["sessions"][0]["id"], c.id.as_str());
    assert_eq!(tabs.body["sessions"][0]["last_message"]["seq"], 4);
    assert_eq!(tabs.body["sessions"][0]["unread_count"], 4);
    app.get(&format!("{}/messages", c.path), &vic.token).await;
    let tabs = app.get("/api/chat/sessions/active", &vic.token).await;
    assert_eq!(tabs.body["sessions"][0]["unread_count"], 0);

    // Losing access to the agent hides the session too.
    app.delete(
        &format!("/api/projects/{}/shares/{}", c.agent_id, vic.id),
        &c.alice.token,
    )
    .await;
    assert_problem(&app.get(&c.path, &vic.token).await, 404);
    assert!(
        app.get("/api/chat/sessions/active?status=all", &vic.token)
            .await
            .body["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
on_both!(someone_the_agent_is_shared_with_joins_and_sees_unread_counts);

async fn a_closed_session_refuses_messages_and_leaves_the_active_tabs(app: TestApp) {
    let c = Conversation::start(&app).await;
    let closed = app
        .call(
            Method::PATCH,
            &c.path,
            Some(&c.alice.token),
            Some(json!({"status": "closed", "title": "Billing (done)"})),
        )
        .await;
    assert_eq!(closed.status, 200);
    assert_eq!(closed.body["status"], "closed");
    assert_eq!(closed.body["title"], "Billing (done)");
    assert_problem(&app.post_message(&c.alice, &c.id, "one more").await, 409);
    assert_problem(
        &app.call(
            Method::PATCH,
            &c.path,
            Some(&c.alice.token),
            Some(json!({"status": "archived"})),
        )
        .await,
        422,
    );
    assert!(
        app.get("/api/chat/sessions/active", &c.alice.token)
            .await
            .body["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let closed_tabs = app
        .get(
            "/api/chat/sessions/active?status=closed&q=billing",
            &c.alice.token,
        )
        .await;
    assert_eq!(closed_tabs.body["sessions"].as_array().unwrap().len(), 1);
    assert_problem(
        &app.get("/api/chat/sessions/active?status=gone", &c.alice.token)
            .await,
        400,
    );
}
on_both!(a_closed_session_refuses_messages_and_leaves_the_active_tabs);

async fn tabs_page_by_activity(app: TestApp) {
    let alice = app.register("alice").await;
    let agent_id = app.agent(&alice, json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.create_session(&alice, &agent_id).await);
    }
    // Activity reorders: the oldest session speaks last.
    app.post(
        &format!("/api/chat/sessions/{}/messages", ids[0]),
        &alice.token,
        json!({"content": "bump"}),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut p = "/api/chat/sessions/active?limit=2".to_owned();
        if let Some(c) = &cursor {
            p += &format!("&cursor={c}");
        }
        let page = app.get(&p, &alice.token).await;
        seen.extend(
            column(&page.body, "sessions", "id")
                .into_iter()
                .map(str::to_owned),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = [&ids[0], &ids[4], &ids[3], &ids[2], &ids[1]]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen, expected);
    let by_agent = app
        .get(
            &format!("/api/chat/sessions/active?agent_id={agent_id}&limit=200"),
            &alice.token,
        )
        .await;
    assert_eq!(by_agent.body["sessions"].as_array().unwrap().len(), 5);
}
on_both!(tabs_page_by_activity);

async fn chat_templates(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let all = app.get("/api/chat/templates?limit=200", &alice.token).await;
    assert_eq!(all.status, 200);
    let categories: std::collections::BTreeSet<&str> =
        column(&all.body, "items", "category").into_iter().collect();
    assert_eq!(
        categories.into_iter().collect::<Vec<_>>(),
        ["customer_support", "general", "sales"]
    );
    let sales = app
        .get("/api/chat/templates?category=sales", &alice.token)
        .await;
    assert!(
        column(&sales.body, "items", "category")
            .iter()
            .all(|c| *c == "sales")
    );
    assert_problem(
        &app.get("/api/chat/templates?category=legal", &alice.token)
            .await,
        400,
    );

    let own = app
        .post("/api/chat/templates", &alice.token,
            json!({"workspace_id": alice.workspace_id, "category": "sales", "title": "Enterprise pricing", "content": "What does the enterprise plan cost for 500 seats?"}))
        .await;
    assert_eq!(own.status, 201, "{:?}", own.body);
    let own_id = own.body["id"].as_str().unwrap().to_owned();
    assert_problem(
        &app.post("/api/chat/templates", &bob.token,
            json!({"workspace_id": alice.workspace_id, "category": "sales", "title": "x", "content": "y"})).await,
        404,
    );
    assert!(
        column(
            &app.get("/api/chat/templates?limit=200", &bob.token)
                .await
                .body,
            "items",
            "id"
        )
        .iter()
        .all(|i| *i != own_id)
    );
    let alices = app
        .get("/api/chat/templates?category=sales", &alice.token)
        .await;
    assert_eq!(
        alices.body["items"][0]["id"],
        own_id.as_str(),
        "newest first"
    );

    // A template opens the conversation: its text is the first message and the agent answers.
    let agent_id = app.agent(&alice, json!({})).await;
    let started = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"agent_id": agent_id, "template_id": own_id}),
        )
        .await;
    assert_eq!(started.status, 201, "{:?}", started.body);
    assert_eq!(started.body["title"], "Enterprise pricing");
    assert_eq!(
        started.body["messages"][0]["content"],
        "What does the enterprise plan cost for 500 seats?"
    );
    assert_eq!(started.body["messages"][1]["role"], "agent");
    assert_eq!(started.body["last_seq"], 2);

    let builtin = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["workspace_id"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_problem(
        &app.delete(&format!("/api/chat/templates/{builtin}"), &alice.token)
            .await,
        403,
    );
    assert_problem(
        &app.delete(&format!("/api/chat/templates/{own_id}"), &bob.token)
            .await,
        404,
    );
    assert_eq!(
        app.delete(&format!("/api/chat/templates/{own_id}"), &alice.token)
            .await
            .status,
        204
    );
}
on_both!(chat_templates);

async fn openai_compatible_provider(app: TestApp) {
    let alice = app.register("alice").await;
    let agent_id = app.agent(&alice, json!({})).await;
    let provider = format!("/api/projects/{agent_id}/provider");
    assert_problem(&app.get(&provider, &alice.token).await, 404);
    let set = app
        .put(&provider, &alice.token, json!({"base_url": mock_ai(), "model": "echo", "api_key": "sk-test-secret", "stream": false}))
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(set.body["has_api_key"], true);
    assert!(!set.body.to_string().contains("sk-test-secret"));
    assert_problem(
        &app.put(
            &provider,
            &alice.token,
            json!({"base_url": "ftp://x", "model": "m"}),
        )
        .await,
        422,
    );
    assert_problem(
        &app.put(
            &provider,
            &alice.token,
            json!({"base_url": mock_ai(), "model": "m", "timeout_ms": 5}),
        )
        .await,
        422,
    );

    let id = app.create_session(&alice, &agent_id).await;
    let messages = format!("/api/chat/sessions/{id}/messages");
    let r = app
        .post(&messages, &alice.token, json!({"content": "hello there"}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["reply"]["content"], "You said: hello there");
    assert_eq!(r.body["reply"]["status"], "ok");
    assert_eq!(r.body["reply"]["prompt_tokens"], 12);
    assert_eq!(r.body["reply"]["completion_tokens"], 5);

    // Streamed: the same answer, usage from the final chunk. The key is kept when omitted.
    let set = app
        .put(
            &provider,
            &alice.token,
            json!({"base_url": mock_ai(), "model": "echo", "stream": true}),
        )
        .await;
    assert_eq!(set.body["has_api_key"], true);
    let r = app
        .post(&messages, &alice.token, json!({"content": "stream it"}))
        .await;
    assert_eq!(r.body["reply"]["content"], "You said: stream it");
    assert_eq!(r.body["reply"]["prompt_tokens"], 11);
    assert_eq!(r.body["reply"]["completion_tokens"], 7);

    // Failures: each becomes an error message, a notification to the owner and a 502.
    let ticket = app
        .post("/api/realtime/tickets", &alice.token, json!({}))
        .await;
    assert_eq!(ticket.status, 201, "{:?}", ticket.body);
    let mut notifications = connect(ticket.body["websocket_url"].as_str().unwrap())
        .await
        .expect("notifications socket");
    for (model, stream, timeout_ms, needle) in [
        ("fail", false, 10_000, "500"),
        ("malformed", false, 10_000, "malformed"),
        ("malformed", true, 10_000, "malformed"),
        ("slow", true, 1_000, "within 1000 ms"),
    ] {
        app.put(&provider, &alice.token, json!({"base_url": mock_ai(), "model": model, "stream": stream, "timeout_ms": timeout_ms})).await;
        let r = app
            .post(
                &messages,
                &alice.token,
                json!({"content": "are you there?"}),
            )
            .await;
        assert_problem(&r, 502);
        assert!(
            r.body["detail"].as_str().unwrap().contains(needle),
            "{model}: {:?}",
            r.body
        );
        assert_eq!(r.body["results"]["reply"]["status"], "error");
        assert_eq!(r.body["results"]["message"]["content"], "are you there?");
        let event = next_event_of(&mut notifications, "notification").await;
        assert_eq!(event["type"], "notification");
        assert_eq!(event["kind"], "agent_error");
        assert_eq!(event["session_id"], id.as_str());
    }
    // Unreachable.
    app.put(
        &provider,
        &alice.token,
        json!({"base_url": "http://127.0.0.1:9/v1", "model": "echo"}),
    )
    .await;
    assert_problem(
        &app.post(&messages, &alice.token, json!({"content": "hello?"}))
            .await,
        502,
    );

    // The failed replies are stored, in order.
    let all = app
        .get(&format!("{messages}?limit=200"), &alice.token)
        .await;
    let statuses = column(&all.body, "items", "status");
    assert_eq!(statuses.len(), 14);
    assert_eq!(statuses.iter().filter(|s| **s == "error").count(), 5);

    assert_eq!(app.delete(&provider, &alice.token).await.status, 204);
    let r = app
        .post(
            &messages,
            &alice.token,
            json!({"content": "back to the fallback"}),
        )
        .await;
    assert_eq!(r.body["reply"]["status"], "unanswered");
}
on_both!(openai_compatible_provider);

async fn a_user_sends_at_most_so_many_messages_a_minute(app: TestApp) {
    let c = Conversation::start(&app).await;
    for i in 0..3 {
        let sent = app
            .post_message(&c.alice, &c.id, &format!("question {i}"))
            .await;
        assert_eq!(sent.status, 201, "{:?}", sent.body);
    }
    let refused = app.post_message(&c.alice, &c.id, "one too many").await;
    assert_problem(&refused, 429);
    assert!(refused.headers.contains_key("retry-after"));
    let all = app
        .get(&format!("{}/messages", c.path), &c.alice.token)
        .await;
    // Three questions, three replies; the refused message was not stored.
    assert_eq!(all.body["items"].as_array().unwrap().len(), 6);
}
on_both!(
    a_user_sends_at_most_so_many_messages_a_minute,
    |c: &mut nova_host::Config| {
        c.chat_rate_limit_per_minute = 3;
    }
);
