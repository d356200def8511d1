//! Analytics figures against hand-computed expectations on a small fixture.

use serde_json::{Value, json};

use crate::helpers::{TestApp, User, assert_problem, column, mock_ai};
use crate::on_both;

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-3)
}

async fn say(app: &TestApp, user: &User, session: &str, text: &str) -> Value {
    app.post(
        &format!("/api/chat/sessions/{session}/messages"),
        &user.token,
        json!({"content": text}),
    )
    .await
    .body
}

/// Agent A answers nothing (fallback); agent B answers through the mock model, fails once,
/// and is rated 5, 2 and 4.
async fn fixture(app: &TestApp, alice: &User) -> (String, String) {
    let a = app
        .project(
            alice,
            json!({"name": "Agent A", "settings": {"fallback_message": "Sorry"}}),
        )
        .await;
    let b = app.project(alice, json!({"name": "Agent B"})).await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    app.answer_with_echo(alice, &b).await;
    let s1 = app
        .post("/api/chat/sessions", &alice.token, json!({"agent_id": a}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s2 = app
        .post("/api/chat/sessions", &alice.token, json!({"agent_id": b}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for text in [
        "Hello",
        "How do I reset my password?",
        "This is terrible, I was charged twice!",
    ] {
        say(app, alice, &s1, text).await;
    }
    let mut replies = Vec::new();
    for text in [
        "How do I reset my password?",
        "password reset how?",
        "I love it, thanks!",
    ] {
        replies.push(
            say(app, alice, &s2, text).await["reply"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.put(
        &format!("/api/projects/{b}/provider"),
        &alice.token,
        json!({"base_url": mock_ai(), "model": "fail"}),
    )
    .await;
    say(app, alice, &s2, "Are you there?").await;
    for (reply, rating) in replies.iter().zip([5, 2, 4]) {
        let r = app
            .post(
                &format!("/api/chat/sessions/{s2}/messages/{reply}/rating"),
                &alice.token,
                json!({"rating": rating}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    (a, b)
}

async fn figures_match_the_fixture(app: TestApp) {
    let alice = app.register("alice").await;
    // Before anything: zeros, one point per day.
    let empty = app
        .get("/api/dashboard/analytics?time_range=30d", &alice.token)
        .await;
    assert_eq!(empty.status, 200, "{:?}", empty.body);
    assert_eq!(empty.body["metrics"]["total_agents"], 0);
    assert!(empty.body["metrics"]["top_performing_agent"].is_null());
    assert_eq!(
        empty.body["trends"]["messages"].as_array().unwrap().len(),
        30
    );
    assert!(
        empty.body["trends"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["count"] == 0)
    );

    let (a, b) = fixture(&app, &alice).await;
    let today = chrono::Utc::now().date_naive().to_string();

    let dash = app
        .get("/api/dashboard/analytics?time_range=7d", &alice.token)
        .await;
    assert_eq!(dash.status, 200, "{:?}", dash.body);
    let m = &dash.body["metrics"];
    assert_eq!(dash.body["time_range"], "7d");
    assert_eq!(m["total_agents"], 2);
    assert_eq!(m["active_chats"], 2);
    assert_eq!(m["messages_today"], 14, "7 user messages and 7 replies");
    assert!(close(&m["user_satisfaction"], 11.0 / 3.0), "{m}");
    assert_eq!(m["top_performing_agent"]["id"], b.as_str());
    assert_eq!(m["top_performing_agent"]["name"], "Agent B");
    assert!(
        close(&m["top_performing_agent"]["success_rate"], 0.5),
        "B: 2 of 4 (one rated 2, one error)"
    );
    let messages = dash.body["trends"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 7);
    assert_eq!(
        messages[6],
        json!({"date": today, "count": 14}),
        "today is the last UTC day"
    );
    assert!(messages[..6].iter().all(|p| p["count"] == 0));
    assert!(close(
        &dash.body["trends"]["satisfaction"][6]["score"],
        11.0 / 3.0
    ));
    assert_eq!(dash.body["trends"]["satisfaction"][5]["score"], 0.0);

    // The average response time is the mean of the stored latencies.
    let mut latencies = Vec::new();
    for agent in [&a, &b] {
        let tabs = app
            .get(
                &format!("/api/chat/sessions/active?agent_id={agent}"),
                &alice.token,
            )
            .await;
        let session = tabs.body["sessions"][0]["id"].as_str().unwrap().to_owned();
        let msgs = app
            .get(
                &format!("/api/chat/sessions/{session}/messages"),
                &alice.token,
            )
            .await;
        for msg in msgs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "agent")
        {
            latencies.push(msg["latency_ms"].as_i64().unwrap());
        }
    }
    let mean = latencies.iter().sum::<i64>() as f64 / latencies.len() as f64 / 1000.0;
    assert!(
        close(&m["avg_response_time"], mean),
        "{} vs {mean}",
        m["avg_response_time"]
    );

    // Agent B in detail.
    let perf = app
        .get(
            &format!("/api/projects/{b}/performance?time_range=7d"),
            &alice.token,
        )
        .await;
    let pm = &perf.body["metrics"];
    assert!(close(&pm["success_rate"], 0.5));
    assert!(close(&pm["error_rate"], 0.25));
    assert_eq!(pm["total_conversations"], 1);
    assert!(close(&pm["user_satisfaction"], 11.0 / 3.0));
    assert_eq!(
        pm["most_asked_questions"][0]["count"], 2,
        "two phrasings of one question: {pm}"
    );
    assert_eq!(
        pm["most_asked_questions"][0]["question"],
        "How do I reset my password?"
    );
    let day = &perf.body["historical_data"][6];
    assert_eq!(
        (
            day["date"].as_str(),
            day["conversations"].as_i64(),
            day["messages"].as_i64()
        ),
        (Some(today.as_str()), Some(1), Some(8))
    );
    let perf_a = app
        .get(
            &format!("/api/projects/{a}/performance?time_range=7d"),
            &alice.token,
        )
        .await;
    assert_eq!(
        perf_a.body["metrics"]["success_rate"], 0.0,
        "fallback answers are unanswered"
    );
    assert!(perf_a.body["metrics"]["user_satisfaction"].is_null());
    let cmp = app
        .get(
            &format!("/api/projects/comparison?ids={a},{b}&time_range=7d"),
            &alice.token,
        )
        .await;
    assert_eq!(
        column(&cmp.body, "projects", "name"),
        ["Agent A", "Agent B"]
    );
    assert!(close(
        &cmp.body["projects"][1]["metrics"]["success_rate"],
        0.5
    ));

    // Conversations: 7 user messages.
    let conv = app
        .get("/api/analytics/conversations?time_range=7d", &alice.token)
        .await;
    assert_eq!(conv.status, 200, "{:?}", conv.body);
    let s = &conv.body["sentiment_analysis"];
    assert!(
        close(&s["positive"], 1.0 / 7.0)
            && close(&s["negative"], 1.0 / 7.0)
            && close(&s["neutral"], 5.0 / 7.0),
        "{s}"
    );
    let intents: Vec<(String, i64)> = conv.body["intent_recognition"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["intent"].as_str().unwrap().to_owned(),
                i["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        intents,
        [
            ("question".to_owned(), 4),
            ("complaint".to_owned(), 1),
            ("feedback".to_owned(), 1),
            ("greeting".to_owned(), 1)
        ]
    );
    let topics: Vec<(String, i64)> = conv.body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        [("account".to_owned(), 3), ("billing".to_owned(), 1)]
    );
    assert!(close(&conv.body["topics"][0]["frequency"], 3.0 / 7.0));
    let only_a = app
        .get(
            &format!("/api/analytics/conversations?time_range=7d&agent_id={a}"),
            &alice.token,
        )
        .await;
    assert!(close(
        &only_a.body["sentiment_analysis"]["negative"],
        1.0 / 3.0
    ));

    // Usage: 7 requests, tokens from the model's usage (3 × 12/5), priced per the table.
    let usage = app
        .get("/api/usage/metrics?time_range=7d", &alice.token)
        .await;
    let t = &usage.body["totals"];
    assert_eq!(
        (
            t["requests"].as_i64(),
            t["prompt_tokens"].as_i64(),
            t["completion_tokens"].as_i64()
        ),
        (Some(7), Some(36), Some(15))
    );
    assert!(
        close(&t["estimated_cost"], (36.0 * 1000.0 + 15.0 * 2000.0) / 1e6),
        "{t}"
    );
    assert!(close(&t["error_rate"], 1.0 / 7.0));
    assert!(
        t["response_time_p50"].as_f64().is_some()
            && t["response_time_p95"].as_f64() >= t["response_time_p50"].as_f64()
    );
    assert_eq!(usage.body["daily"].as_array().unwrap().len(), 7);
    assert_eq!(
        usage.body["by_project"][0]["project_id"],
        b.as_str(),
        "the costly one first"
    );

    // A stranger sees none of it.
    let bob = app.register("bob").await;
    let theirs = app.get("/api/dashboard/analytics", &bob.token).await;
    assert_eq!(theirs.body["metrics"]["total_agents"], 0);
    assert_eq!(theirs.body["metrics"]["messages_today"], 0);
    assert_problem(
        &app.get(&format!("/api/projects/{b}/performance"), &bob.token)
            .await,
        404,
    );
    assert_problem(
        &app.get(
            &format!("/api/analytics/conversations?agent_id={b}"),
            &bob.token,
        )
        .await,
        404,
    );
    assert_problem(
        &app.get("/api/dashboard/analytics?time_range=1y", &alice.token)
            .await,
        400,
    );

    // Recommendations carry their numbers: A leaves every question unanswered... with 3
    // replies (< 5) no rule fires yet; two more exchanges make it 100 %.
    let s1 = app
        .get(
            &format!("/api/chat/sessions/active?agent_id={a}"),
            &alice.token,
        )
        .await
        .body["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    say(&app, &alice, &s1, "anyone?").await;
    say(&app, &alice, &s1, "hello?").await;
    let recs = app
        .get("/api/dashboard/recommendations", &alice.token)
        .await;
    let knowledge = recs.body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "knowledge")
        .expect("a knowledge recommendation");
    assert_eq!(knowledge["agent_id"], a.as_str());
    assert_eq!(knowledge["priority"], "medium");
    assert!(
        knowledge["description"]
            .as_str()
            .unwrap()
            .contains("100% of replies this week were unanswered (5 of 5)")
    );
    let reliability = recs.body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "reliability")
        .expect("errors rising");
    assert!(reliability["description"].as_str().unwrap().contains("25%"));
    assert_eq!(recs.body["recommendations"][0]["priority"], "high");
}
on_both!(figures_match_the_fixture, |c: &mut nova_host::Config| {
    c.model_prices.insert("echo".into(), (1000.0, 2000.0));
});

async fn recompute_equals_incremental(app: TestApp) {
    let alice = app.register("alice").await;
    fixture(&app, &alice).await;
    let paths = [
        "/api/dashboard/analytics?time_range=30d",
        "/api/analytics/conversations?time_range=30d",
        "/api/usage/metrics?time_range=30d",
        "/api/dashboard/recommendations",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(app.get(p, &alice.token).await.body);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nova"))
        .arg("recompute-metrics")
        .env_clear()
        .env("DATABASE_URL", &app.database_url)
        .env("NOVA_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("from 14 messages"));
    // A fresh replica has no cache: it reads the recomputed rollups.
    let fresh = app
        .replica(|c| {
            c.model_prices.insert("echo".into(), (1000.0, 2000.0));
        })
        .await;
    for (p, expected) in paths.iter().zip(before) {
        assert_eq!(fresh.get(p, &alice.token).await.body, expected, "{p}");
    }
    fresh.finish().await;
}
on_both!(recompute_equals_incremental, |c: &mut nova_host::Config| {
    c.model_prices.insert("echo".into(), (1000.0, 2000.0));
});

async fn ab_test_variants(app: TestApp) {
    let alice = app.register("alice").await;
    let agent = app
        .project(
            &alice,
            json!({"name": "Tested", "system_prompt": "Base prompt"}),
        )
        .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    app.answer_with_echo(&alice, &id).await;
    let path = format!("/api/projects/{id}/variants");
    for bad in [
        json!({"variants": [{"name": "a", "weight": 100}]}),
        json!({"variants": [{"name": "a", "weight": 60}, {"name": "b", "weight": 60}]}),
        json!({"variants": [{"name": "a", "weight": 50}, {"name": "a", "weight": 50}]}),
    ] {
        assert_problem(&app.put(&path, &alice.token, bad).await, 422);
    }
    let set = app
        .put(&path, &alice.token, json!({"variants": [
            {"name": "control", "weight": 50},
            {"name": "concise", "weight": 50, "system_prompt": "Answer in one sentence.", "settings": {"temperature": 0.1}}
        ]}))
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(
        column(&app.get(&path, &alice.token).await.body, "variants", "name"),
        ["concise", "control"]
    );

    // 24 sessions, one exchange each; control replies are rated 5, concise ones 1.
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    for _ in 0..24 {
        let s = app
            .post("/api/chat/sessions", &alice.token, json!({"agent_id": id}))
            .await;
        let variant = s.body["variant"].as_str().expect("a variant").to_owned();
        let sid = s.body["id"].as_str().unwrap().to_owned();
        let reply = say(&app, &alice, &sid, "What are your opening hours?").await;
        let rating = if variant == "control" { 5 } else { 1 };
        app.post(
            &format!(
                "/api/chat/sessions/{sid}/messages/{}/rating",
                reply["reply"]["id"].as_str().unwrap()
            ),
            &alice.token,
            json!({"rating": rating}),
        )
        .await;
        *counts.entry(variant).or_default() += 1;
    }
    let ab = app
        .get(
            &format!("/api/analytics/performance/comparison?agent_id={id}"),
            &alice.token,
        )
        .await;
    assert_eq!(ab.status, 200, "{:?}", ab.body);
    let variants = ab.body["variants"].as_array().unwrap();
    for v in variants {
        let name = v["variant"].as_str().unwrap();
        let n = counts.get(name).copied().unwrap_or(0);
        assert_eq!(v["sessions"], n);
        assert_eq!(v["sample_size"], n);
        assert_eq!(v["success_rate"], if name == "control" { 1.0 } else { 0.0 });
    }
    if variants.len() == 2 && counts.values().all(|n| *n >= 2) {
        let test = &variants[1]["success_rate_test"];
        assert_eq!(test["significant"], true, "{test}");
        // Variants come in name order: "concise" is the control, "control" is tested
        // against it. z from the counts by hand: 1.0 vs 0.0 with pooled p = n(control)/24.
        assert_eq!(
            column(&ab.body, "variants", "variant"),
            ["concise", "control"]
        );
        let (n_control, n_concise) = (counts["control"] as f64, counts["concise"] as f64);
        let p = n_control / 24.0;
        let z = (1.0 - 0.0) / (p * (1.0 - p) * (1.0 / n_control + 1.0 / n_concise)).sqrt();
        assert!(close(&test["statistic"], z), "{test} vs {z}");
    }
    // `project_id` names the agent as well as `agent_id` does (the rest of the API's word).
    let by_project_id = app
        .get(
            &format!("/api/analytics/performance/comparison?project_id={id}"),
            &alice.token,
        )
        .await;
    assert_eq!(by_project_id.status, 200, "{:?}", by_project_id.body);
    assert_eq!(by_project_id.body["variants"], ab.body["variants"]);
    assert_problem(
        &app.get(
            "/api/analytics/performance/comparison?agent_id=00000000-0000-7000-8000-000000000000",
            &alice.token,
        )
        .await,
        404,
    );
}
on_both!(ab_test_variants);

async fn topics_are_configurable(app: TestApp) {
    let alice = app.register("alice").await;
    let ws = &alice.workspace_id;
    let defaults = app
        .get(
            &format!("/api/analytics/topics?workspace_id={ws}"),
            &alice.token,
        )
        .await;
    assert!(defaults.body["topics"]["billing"].as_array().is_some());
    let set = app
        .put(
            &format!("/api/analytics/topics?workspace_id={ws}"),
            &alice.token,
            json!({"topics": {"Weather": ["rain", "Sunny day"]}}),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(
        set.body["topics"]["weather"],
        json!(["rain", "sunny", "day"])
    );
    let agent = app.project(&alice, json!({"name": "W"})).await;
    let s = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"agent_id": agent["id"]}),
        )
        .await;
    say(
        &app,
        &alice,
        s.body["id"].as_str().unwrap(),
        "Will it rain tomorrow?",
    )
    .await;
    let conv = app.get("/api/analytics/conversations", &alice.token).await;
    assert_eq!(
        conv.body["topics"],
        json!([{"topic": "weather", "frequency": 1.0, "count": 1}])
    );
    let bob = app.register("bob").await;
    assert_problem(
        &app.put(
            &format!("/api/analytics/topics?workspace_id={ws}"),
            &bob.token,
            json!({"topics": {"x": ["y"]}}),
        )
        .await,
        404,
    );
    assert_problem(
        &app.put(
            &format!("/api/analytics/topics?workspace_id={ws}"),
            &alice.token,
            json!({"topics": {}}),
        )
        .await,
        422,
    );
}
on_both!(topics_are_configurable);

/// With no model configured every reply is unanswered, so every agent's success rate is 0:
/// the better-rated agent is the top one, not the busier one.
async fn a_tie_on_success_rate_goes_to_the_better_rated_agent(app: TestApp) {
    let alice = app.register("alice").await;
    let mut rated = Vec::new();
    for (name, questions, rating) in [("Busy", 3, 2), ("Liked", 1, 5)] {
        let agent = app.project(&alice, json!({"name": name})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let session = app.create_session(&alice, &agent).await;
        for _ in 0..questions {
            let reply = say(&app, &alice, &session, "Where is my parcel?").await;
            let id = reply["reply"]["id"].as_str().unwrap().to_owned();
            let r = app
                .post(
                    &format!("/api/chat/sessions/{session}/messages/{id}/rating"),
                    &alice.token,
                    json!({"rating": rating}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        rated.push(agent);
    }
    let dash = app
        .get("/api/dashboard/analytics?time_range=7d", &alice.token)
        .await;
    let top = &dash.body["metrics"]["top_performing_agent"];
    assert_eq!(top["success_rate"], 0.0, "{top}");
    assert_eq!(top["id"], rated[1].as_str(), "{top}");
}
on_both!(a_tie_on_success_rate_goes_to_the_better_rated_agent);

/// `GET /api/usage/metrics` counts the caller's API requests, in total and per API key, with
/// errors (4xx and 5xx).
async fn usage_counts_api_requests_per_api_key(app: TestApp) {
    let alice = app.register("alice").await;
    let created = app
        .post("/api/user/api-keys", &alice.token, json!({"name": "CI"}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(app.get("/api/projects", &key).await.status, 200);
    }
    assert_problem(&app.get("/api/projects/not-a-uuid", &key).await, 400);
    // Counts reach the table every second.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let usage = app.get("/api/usage/metrics", &alice.token).await;
    assert_eq!(usage.status, 200, "{:?}", usage.body);
    let api = &usage.body["api"];
    let by_key = api["by_api_key"].as_array().unwrap();
    assert_eq!(by_key.len(), 1, "{api}");
    assert_eq!(by_key[0]["api_key_id"], key_id.as_str());
    assert_eq!(by_key[0]["name"], "CI");
    assert_eq!(by_key[0]["requests"], 4);
    assert_eq!(by_key[0]["errors"], 1);
    assert_eq!(by_key[0]["error_rate"], 0.25);
    // The session's own requests (creating the key) are in the totals.
    assert!(api["requests"].as_i64().unwrap() >= 5, "{api}");
    assert_eq!(api["errors"], 1);
}
on_both!(usage_counts_api_requests_per_api_key);
