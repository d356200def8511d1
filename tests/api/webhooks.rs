//! Outbound webhooks: endpoint CRUD and validation, Standard Webhooks signatures checked by
//! the reference `standardwebhooks` crate, secret rotation, retries on the schedule, 410 and
//! disabling, isolation of a slow receiver, two hosts, and SIGKILL mid-retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, User, assert_problem, drop_database, eventually, fresh_database,
};
use crate::on_both;

/// What a receiver saw: each request's headers and body, and the status it answered.
type Seen = Arc<Mutex<Vec<(HeaderMap, String, u16)>>>;

/// A local receiver: `answer(n)` gives the status and delay of the answer to the n-th
/// (0-based) request carrying the same `webhook-id`.
async fn receiver(
    answer: impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static,
) -> (String, Seen) {
    let seen: Seen = Default::default();
    let log = seen.clone();
    let answer = Arc::new(answer);
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let log = log.clone();
        let answer = answer.clone();
        async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let (status, delay) = {
                let mut log = log.lock().unwrap();
                let before = log
                    .iter()
                    .filter(|(h, _, _)| {
                        h.get("webhook-id").and_then(|v| v.to_str().ok()) == Some(&id)
                    })
                    .count();
                let (status, delay) = answer(before);
                log.push((headers, body, status));
                (status, delay)
            };
            tokio::time::sleep(delay).await;
            (StatusCode::from_u16(status).unwrap(), "thanks")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks"), seen)
}

fn ok_receiver() -> impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static {
    |_| (200, Duration::ZERO)
}

async fn create_webhook(app: &TestApp, user: &User, body: Value) -> Value {
    let r = app.post("/api/webhooks", &user.token, body).await;
    assert_eq!(r.status, 201, "create webhook: {:?}", r.body);
    r.body
}

async fn deliveries(app: &TestApp, user: &User, webhook: &str, query: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/webhooks/{webhook}/deliveries{query}"),
            &user.token,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// Waits for `n` requests at the receiver.
async fn received(seen: &Seen, n: usize) -> Vec<(HeaderMap, String, u16)> {
    eventually(&format!("{n} requests at the receiver"), || async {
        let log = seen.lock().unwrap();
        (log.len() >= n).then(|| log.clone())
    })
    .await
}

async fn webhook_crud_and_validation(app: TestApp) {
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let mallory = app.register("mallory").await;
    let body = json!({"url": "https://example.com/hooks", "events": ["chat.message.created", "agent.*"],
        "description": "CRM sync"});
    let created = create_webhook(&app, &alice, body.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(standardwebhooks::Webhook::new(secret).is_ok());
    assert_eq!(created["enabled"], true);
    assert_eq!(created["workspace_id"], alice.workspace_id.as_str());
    // The secret is shown once.
    let read = app.get(&format!("/api/webhooks/{id}"), &alice.token).await;
    assert_eq!(read.status, 200);
    assert!(read.body.get("secret").is_none(), "{:?}", read.body);
    assert_eq!(
        read.body["events"],
        json!(["chat.message.created", "agent.*"])
    );

    // Bad input names its field.
    for (bad, pointer) in [
        (
            json!({"url": "https://example.com/h", "events": ["chat.message.created", "chat.nothing"]}),
            "events/1",
        ),
        (
            json!({"url": "https://example.com/h", "events": []}),
            "events",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": "ftp://example.com/h", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "project_ids": [alice.id]}),
            "project_ids/0",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "secret": "mine"}),
            "",
        ),
    ] {
        let r = app.post("/api/webhooks", &alice.token, bad.clone()).await;
        assert_problem(&r, 422);
        if !pointer.is_empty() {
            assert_eq!(r.body["errors"][0]["field"], pointer, "{bad}: {:?}", r.body);
        }
    }

    // Admins manage; members get 403, strangers 404.
    let add = app
        .post(
            &format!("/api/team/workspaces/{}/members", alice.workspace_id),
            &alice.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await;
    assert_eq!(add.status, 201, "{:?}", add.body);
    let mut theirs = body.clone();
    theirs["workspace_id"] = json!(alice.workspace_id);
    assert_problem(&app.post("/api/webhooks", &carol.token, theirs).await, 403);
    assert_problem(
        &app.get(&format!("/api/webhooks/{id}"), &carol.token).await,
        403,
    );
    assert_problem(
        &app.get(&format!("/api/webhooks/{id}"), &mallory.token)
            .await,
        404,
    );
    assert_problem(
        &app.delete(&format!("/api/webhooks/{id}"), &mallory.token)
            .await,
        404,
    );
    let listed = app.get("/api/webhooks", &carol.token).await;
    assert_eq!(listed.body["items"], json!([]), "a member lists none");

    // PATCH, with the version guard.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            Some(&alice.token),
            Some(json!({"enabled": false, "events": ["*"], "version": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["version"], 2);
    let stale = app
        .call(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            Some(&alice.token),
            Some(json!({"description": "late", "version": 1})),
        )
        .await;
    assert_problem(&stale, 409);

    // Pages: three more, two at a time, newest first.
    for i in 0..3 {
        create_webhook(
            &app,
            &alice,
            json!({"url": format!("https://example.com/{i}"), "events": ["*"]}),
        )
        .await;
    }
    let first = app.get("/api/webhooks?limit=2", &alice.token).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["items"][0]["url"], "https://example.com/2");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/webhooks?limit=2&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(second.body["items"][1]["id"], id.as_str());
    assert!(second.body["next_cursor"].is_null());

    assert_eq!(
        app.delete(&format!("/api/webhooks/{id}"), &alice.token)
            .await
            .status,
        204
    );
    assert_problem(
        &app.get(&format!("/api/webhooks/{id}"), &alice.token).await,
        404,
    );

    // The OpenAPI document describes what receivers get (its `webhooks` section).
    let doc = app.get("/api/openapi.json", &alice.token).await;
    let sent = &doc.body["webhooks"]["chat.message.created"]["post"];
    assert_eq!(
        sent["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]["$ref"],
        "#/components/schemas/EventData.chat.message.created"
    );
    assert_eq!(sent["parameters"][2]["name"], "webhook-signature");
    assert!(doc.body["webhooks"]["webhook.test"].is_object());
    assert!(doc.body["paths"]["/api/webhooks/{id}/deliveries"]["get"].is_object());
}
on_both!(webhook_crud_and_validation);

/// Without `NOVA_ALLOW_PRIVATE_URLS`, an endpoint is https and public.
async fn urls_must_be_https_and_public(app: TestApp) {
    let alice = app.register("alice").await;
    for url in [
        "http://example.com/hooks",
        "https://127.0.0.1/hooks",
        "https://[::1]/hooks",
        "https://user:pw@example.com/",
    ] {
        let r = app
            .post(
                "/api/webhooks",
                &alice.token,
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {:?}", r.body);
    }
}
on_both!(urls_must_be_https_and_public, |c| c.allow_private_urls =
    Default::default());

async fn deliveries_are_signed_and_rotation_gives_two_signatures(app: TestApp) {
    let alice = app.register("alice").await;
    let (url, seen) = receiver(ok_receiver()).await;
    let created = create_webhook(&app, &alice, json!({"url": url, "events": ["project.*"]})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let project = app.project(&alice, json!({"name": "Support Bot"})).await;
    let (headers, body, _) = received(&seen, 1).await.remove(0);
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(body.as_bytes(), &headers)
        .expect("the reference library verifies the signature");
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["type"], "project.created");
    assert_eq!(payload["data"]["project_id"], project["id"]);
    assert_eq!(payload["data"]["name"], "Support Bot");
    assert!(payload["timestamp"].is_string());
    assert_eq!(headers["content-type"], "application/json");

    // The delivery log: the event id is the webhook-id; the attempt with its answer.
    let log = eventually("the delivery to succeed", || async {
        let items = deliveries(&app, &alice, &id, "?status=succeeded").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(log[0]["event_type"], "project.created");
    assert_eq!(headers["webhook-id"], log[0]["event_id"].as_str().unwrap());
    assert_eq!(log[0]["attempt_count"], 1);
    assert_eq!(log[0]["attempts"][0]["response_status"], 200);
    assert_eq!(log[0]["attempts"][0]["response_body"], "thanks");
    assert!(log[0]["attempts"][0]["duration_ms"].is_i64());

    // Rotation: both secrets sign for a while.
    let rotated = app
        .post(
            &format!("/api/webhooks/{id}/rotate-secret"),
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    app.project(&alice, json!({"name": "Sales Bot"})).await;
    let (headers, body, _) = received(&seen, 2).await.remove(1);
    let signatures = headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    for s in [&secret, &new_secret] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(body.as_bytes(), &headers)
            .expect("each live secret verifies");
    }

    // A test event, answered with its attempt; and events outside the subscription are not
    // sent.
    let test = app
        .post(&format!("/api/webhooks/{id}/test"), &alice.token, json!({}))
        .await;
    assert_eq!(test.status, 200, "{:?}", test.body);
    assert_eq!(test.body["event_type"], "webhook.test");
    assert_eq!(test.body["status"], "succeeded");
    assert_eq!(test.body["attempts"][0]["response_status"], 200);
    let after_test = received(&seen, 3).await;
    let test_body: Value = serde_json::from_str(&after_test[2].1).unwrap();
    assert_eq!(test_body["type"], "webhook.test");
    let agent = app.agent(&alice, json!({})).await;
    app.create_session(&alice, &agent).await;
    let everything = received(&seen, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let types: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b, _)| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(everything.len() >= 4);
    assert!(
        types
            .iter()
            .all(|t| t.starts_with("project.") || t == "webhook.test"),
        "{types:?}"
    );
}
on_both!(deliveries_are_signed_and_rotation_gives_two_signatures);

async fn retries_on_the_schedule_and_disables_dead_endpoints(app: TestApp) {
    let alice = app.register("alice").await;
    // 500 twice, then 200.
    let (flaky_url, flaky_seen) =
        receiver(|n| (if n < 2 { 500 } else { 200 }, Duration::ZERO)).await;
    let (gone_url, gone_seen) = receiver(|_| (410, Duration::ZERO)).await;
    let (dead_url, dead_seen) = receiver(|_| (500, Duration::ZERO)).await;
    let flaky = create_webhook(
        &app,
        &alice,
        json!({"url": flaky_url, "events": ["project.created"]}),
    )
    .await;
    let gone = create_webhook(
        &app,
        &alice,
        json!({"url": gone_url, "events": ["project.created"]}),
    )
    .await;
    let dead = create_webhook(
        &app,
        &alice,
        json!({"url": dead_url, "events": ["project.created"]}),
    )
    .await;
    app.project(&alice, json!({"name": "Support Bot"})).await;

    let flaky_id = flaky["id"].as_str().unwrap();
    let log = eventually("the flaky delivery to succeed", || async {
        let items = deliveries(&app, &alice, flaky_id, "?status=succeeded").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    let statuses: Vec<&Value> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["response_status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)]);
    assert_eq!(flaky_seen.lock().unwrap().len(), 3);
    let flaky_now = app
        .get(&format!("/api/webhooks/{flaky_id}"), &alice.token)
        .await;
    assert_eq!(flaky_now.body["enabled"], true);
    assert_eq!(flaky_now.body["consecutive_failures"], 0);

    // 410 Gone disables at once.
    let gone_id = gone["id"].as_str().unwrap();
    let disabled = eventually("the 410 endpoint to be disabled", || async {
        let r = app
            .get(&format!("/api/webhooks/{gone_id}"), &alice.token)
            .await;
        (r.body["enabled"] == false).then_some(r.body)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{disabled}"
    );
    assert_eq!(gone_seen.lock().unwrap().len(), 1);
    let failed = deliveries(&app, &alice, gone_id, "?status=failed").await;
    assert_eq!(failed.len(), 1);

    // Always 500: four attempts (the first and three retries), then failed, and the
    // endpoint disabled after four failures in a row (NOVA_WEBHOOK_DISABLE_AFTER=4).
    let dead_id = dead["id"].as_str().unwrap();
    let failed = eventually("the dead endpoint's delivery to fail", || async {
        let items = deliveries(&app, &alice, dead_id, "?status=failed").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(failed[0]["attempt_count"], 4);
    assert_eq!(dead_seen.lock().unwrap().len(), 4);
    let dead_now = app
        .get(&format!("/api/webhooks/{dead_id}"), &alice.token)
        .await;
    assert_eq!(dead_now.body["enabled"], false, "{:?}", dead_now.body);
    assert!(dead_now.body["failing_since"].is_string());
    // A disabled endpoint gets no new deliveries.
    app.project(&alice, json!({"name": "Sales Bot"})).await;
    eventually("the flaky endpoint's second delivery", || async {
        (deliveries(&app, &alice, flaky_id, "").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(deliveries(&app, &alice, dead_id, "").await.len(), 1);
    // The feed tells of the disabling.
    let feed = app
        .get(
            &format!(
                "/api/team/activity-feed?workspace_id={}",
                alice.workspace_id
            ),
            &alice.token,
        )
        .await;
    let kinds: Vec<&str> = feed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "webhook.endpoint.disabled")
            .count(),
        2,
        "{kinds:?}"
    );

    // A manual retry sends now and is logged; the delivery stays failed on another 500.
    let delivery = failed[0]["id"].as_str().unwrap();
    let retried = app
        .post(
            &format!("/api/webhooks/{dead_id}/deliveries/{delivery}/retry"),
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert_eq!(retried.body["attempt_count"], 5);
    assert_eq!(retried.body["status"], "failed");
    // Usage: every attempt (flaky 3 + 3 for its second event, gone 1, dead 4, the manual
    // retry 1), with failures and latency.
    eventually(
        "the flaky endpoint's second delivery to succeed",
        || async {
            (deliveries(&app, &alice, flaky_id, "?status=succeeded")
                .await
                .len()
                == 2)
                .then_some(())
        },
    )
    .await;
    let usage = app.get("/api/usage/metrics", &alice.token).await;
    assert_eq!(usage.status, 200, "{:?}", usage.body);
    let figures = &usage.body["webhooks"];
    assert_eq!(figures["attempts"], 12, "{figures}");
    assert_eq!(figures["failed_attempts"], 10, "{figures}");
    assert_eq!(figures["succeeded"], 2, "{figures}");
    assert_eq!(figures["failed"], 2, "{figures}");
    assert!((figures["failure_rate"].as_f64().unwrap() - 10.0 / 12.0).abs() < 1e-9);
    assert!(figures["latency_p50_ms"].as_f64().unwrap() > 0.0);

    // Enabled again, with a clean record.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/webhooks/{dead_id}"),
            Some(&alice.token),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["consecutive_failures"], 0);
    assert!(r.body["disabled_reason"].is_null());
}
on_both!(retries_on_the_schedule_and_disables_dead_endpoints, |c| {
    c.webhook_retry_schedule = vec![std::time::Duration::from_millis(300); 3];
    c.webhook_disable_after = nova_host::config::DisableAfter::Failures(4);
});

async fn a_slow_receiver_does_not_delay_a_fast_one(app: TestApp) {
    let alice = app.register("alice").await;
    let (slow_url, slow_seen) = receiver(|_| (200, Duration::from_secs(60))).await;
    let (fast_url, fast_seen) = receiver(ok_receiver()).await;
    create_webhook(
        &app,
        &alice,
        json!({"url": slow_url, "events": ["project.created"]}),
    )
    .await;
    create_webhook(
        &app,
        &alice,
        json!({"url": fast_url, "events": ["project.created"]}),
    )
    .await;
    for i in 0..12 {
        app.project(&alice, json!({"name": format!("Bot {i}")}))
            .await;
    }
    received(&fast_seen, 12).await;
    let slow = slow_seen.lock().unwrap().len();
    assert!(
        slow <= 4,
        "the slow endpoint holds at most its own slots: {slow}"
    );
}
on_both!(a_slow_receiver_does_not_delay_a_fast_one);

async fn two_hosts_deliver_each_event_once(app: TestApp) {
    let second = app.replica(|_| {}).await;
    let alice = app.register("alice").await;
    let (url, seen) = receiver(|_| (200, Duration::from_millis(20))).await;
    create_webhook(
        &app,
        &alice,
        json!({"url": url, "events": ["project.created"]}),
    )
    .await;
    for i in 0..20 {
        let host = if i % 2 == 0 { &app } else { &second };
        let r = host
            .post(
                "/api/projects",
                &alice.token,
                json!({"name": format!("Bot {i}")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    received(&seen, 20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (20, 20), "{ids:?}");
    second.finish().await;
}
on_both!(two_hosts_deliver_each_event_once);

/// A host killed with SIGKILL while deliveries wait for their retry: after a restart each
/// is delivered, and no receiver that answered 2xx sees its event again.
async fn kill_9_mid_retry_loses_no_delivery(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((database_url, pg_database)) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let data_dir = dir.path().display().to_string();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("NOVA_DATA_DIR", data_dir.as_str()),
        ("NOVA_WEBHOOK_RETRY_SCHEDULE", "3s,1s,1s,1s"),
    ];
    let (mut first, base) = crate::helpers::start_nova(&env).await;
    let app = TestApp::at(&base);
    let alice = app.register("alice").await;
    // Each event: 500 the first time, then 200.
    let (url, seen) = receiver(|n| (if n == 0 { 500 } else { 200 }, Duration::ZERO)).await;
    create_webhook(
        &app,
        &alice,
        json!({"url": url, "events": ["project.created"]}),
    )
    .await;
    for i in 0..5 {
        app.project(&alice, json!({"name": format!("Bot {i}")}))
            .await;
    }
    // Every first attempt failed and is recorded; the retries wait 3 s.
    received(&seen, 5).await;
    let id = app.get("/api/webhooks", &alice.token).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("each first attempt to be recorded", || async {
        let items = deliveries(&app, &alice, &id, "?status=pending").await;
        (items.len() == 5 && items.iter().all(|d| d["attempt_count"] == 1)).then_some(())
    })
    .await;
    let pid = first.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let _ = first.wait().await;

    let (_second, base) = crate::helpers::start_nova(&env).await;
    let app = TestApp::at(&base);
    received(&seen, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut answered: HashMap<String, Vec<u16>> = HashMap::new();
    for (h, _, status) in seen.lock().unwrap().iter() {
        answered
            .entry(h["webhook-id"].to_str().unwrap().to_owned())
            .or_default()
            .push(*status);
    }
    assert_eq!(answered.len(), 5);
    for statuses in answered.values() {
        assert_eq!(statuses, &[500, 200], "{answered:?}");
    }
    assert_eq!(
        deliveries(&app, &alice, &id, "?status=succeeded")
            .await
            .len(),
        5
    );
    drop_database(pg_database).await;
}

on_both!(backend kill_9_mid_retry_loses_no_delivery);
