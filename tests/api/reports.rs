//! Composed reports: sections, agents and days chosen by the caller, rendered by every
//! built-in exporter; and scheduled reports.

use serde_json::{Value, json};

use crate::helpers::{TestApp, User, assert_problem, eventually, recorder};
use crate::on_both;

const CYRILLIC: &str = "Агент поддержки";
const GREEK: &str = "Ωμέγα βοηθός";

/// Text of every page of a PDF.
fn pdf_text(bytes: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(bytes).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).unwrap()
}

fn section<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("section {id} in {report}"))
}

fn table<'a>(section: &'a Value, title: &str) -> &'a Value {
    section["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == title)
        .unwrap_or_else(|| panic!("table {title} in {section}"))
}

async fn composed_reports_cover_what_was_asked(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let cyrillic = app.project(&alice, json!({"name": CYRILLIC})).await;
    let greek = app.project(&alice, json!({"name": GREEK})).await;
    let other = app.project(&alice, json!({"name": "Left out"})).await;
    let bobs = app.project(&bob, json!({"name": "Bob's"})).await;
    for (agent, messages) in [
        (
            &cyrillic,
            vec!["I love this, thank you!", "Where is my refund?"],
        ),
        (&greek, vec!["This is terrible, cancel my order"]),
        (&other, vec!["Hello"]),
    ] {
        let session = app
            .create_session(&alice, agent["id"].as_str().unwrap())
            .await;
        for text in messages {
            assert_eq!(app.post_message(&alice, &session, text).await.status, 201);
        }
    }
    // The Greek agent then splits new sessions between two variants (its first had none).
    let r = app
        .put(
            &format!("/api/projects/{}/variants", greek["id"].as_str().unwrap()),
            &alice.token,
            json!({"variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut variants = std::collections::BTreeSet::from([String::new()]);
    for _ in 0..6 {
        let s = app
            .post(
                "/api/chat/sessions",
                &alice.token,
                json!({"agent_id": greek["id"]}),
            )
            .await;
        variants.insert(s.body["variant"].as_str().unwrap().to_owned());
        let sid = s.body["id"].as_str().unwrap();
        assert_eq!(
            app.post_message(&alice, sid, "Hello there").await.status,
            201
        );
    }
    let today = chrono::Utc::now().date_naive();
    let week_ago = (today - chrono::Duration::days(6)).to_string();
    let ids = json!([cyrillic["id"], greek["id"]]);

    // What cannot be composed is refused before anything is queued.
    for (body, status) in [
        (
            json!({"format": "json", "time_range": "7d", "from": week_ago}),
            422,
        ),
        (json!({"format": "json", "to": today.to_string()}), 422),
        (
            json!({"format": "json", "from": today.to_string(), "to": week_ago}),
            422,
        ),
        (
            json!({"format": "json", "from": (today + chrono::Duration::days(1)).to_string()}),
            422,
        ),
        (
            json!({"format": "json", "from": "2020-01-01", "to": "2021-06-01"}),
            422,
        ),
        (json!({"format": "json", "sections": []}), 422),
        (json!({"format": "json", "sections": ["weather"]}), 422),
        (json!({"format": "json", "agent_ids": [bobs["id"]]}), 404),
        (json!({"format": "json", "agent_ids": ["not-a-uuid"]}), 422),
    ] {
        let r = app
            .post("/api/analytics/export", &alice.token, body.clone())
            .await;
        assert_problem(&r, status);
        assert!(r.status == status, "{body}");
    }

    let sections = json!([
        "performance",
        "conversations",
        "knowledge",
        "usage",
        "ab_tests"
    ]);
    let mut files = Vec::new();
    for format in ["json", "csv", "pdf"] {
        let r = app
            .post(
                "/api/analytics/export",
                &alice.token,
                // `project_ids` is the alias of `agent_ids`; a repeated section counts once.
                json!({"format": format, "title": "Board pack \u{2014} Q4",
                    "sections": ["performance", "conversations", "knowledge", "usage", "ab_tests", "usage"],
                    "project_ids": ids, "from": week_ago, "to": today.to_string()}),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        assert_eq!(r.body["sections"], sections);
        let mut asked: Vec<&str> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        asked.sort();
        assert_eq!(r.body["agent_ids"], json!(asked));
        assert_eq!(r.body["from"], week_ago);
        assert_eq!(r.body["to"], today.to_string());
        assert_eq!(r.body["time_range"], format!("{week_ago}..{today}"));
        let done = app
            .export_done(&alice.token, r.body["id"].as_str().unwrap())
            .await;
        assert_eq!(done["status"], "done", "{done}");
        files.push(
            app.download(&alice.token, done["download_url"].as_str().unwrap())
                .await
                .1,
        );
    }

    let report: Value = serde_json::from_slice(&files[0]).unwrap();
    let ids_in_order: Vec<&str> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids_in_order,
        [
            "performance",
            "conversations",
            "knowledge",
            "usage",
            "ab_tests"
        ]
    );
    let per_agent = table(section(&report, "performance"), "Per agent")["rows"]
        .as_array()
        .unwrap();
    let mut names: Vec<&str> = per_agent
        .iter()
        .map(|r| r["Agent"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [GREEK, CYRILLIC],
        "only the agents asked for (Greek sorts first)"
    );
    let cyr = per_agent.iter().find(|r| r["Agent"] == CYRILLIC).unwrap();
    assert_eq!(cyr["Conversations"], 1);
    assert_eq!(cyr["Messages"], 4);
    assert_eq!(
        table(section(&report, "performance"), "Per day")["rows"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    let sentiment = table(
        section(&report, "conversations"),
        "Sentiment of user messages",
    );
    let shares: Vec<f64> = sentiment["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Share (%)"].as_f64().unwrap())
        .collect();
    assert!(
        shares[0] > 0.0 && shares[2] > 0.0,
        "one positive, one negative: {sentiment}"
    );
    let totals = table(section(&report, "usage"), "Totals")["rows"]
        .as_array()
        .unwrap();
    let replies = totals
        .iter()
        .find(|r| r["Figure"] == "Agent replies")
        .unwrap();
    assert_eq!(
        replies["Value"], 9,
        "the replies to the two agents' nine messages"
    );
    let ab = section(&report, "ab_tests");
    let compared = table(ab, GREEK)["rows"].as_array().unwrap();
    assert_eq!(compared.len(), variants.len(), "{ab}");
    assert_eq!(
        compared[0]["Variant"], "(none)",
        "the control: sessions without a variant"
    );
    assert!(compared[0]["p (success rate)"].is_null());
    assert_eq!(
        ab["tables"].as_array().unwrap().len(),
        1,
        "only the agent with variants"
    );
    assert!(
        section(&report, "knowledge")["tables"]
            .as_array()
            .unwrap()
            .len()
            == 2
    );
    assert_eq!(section(&report, "ab_tests")["title"], "A/B tests");
    assert_eq!(report["agents"].as_array().unwrap().len(), 2);

    let csv = String::from_utf8(files[1].clone()).unwrap();
    for expected in [
        "Performance \u{2014} Per agent",
        "Conversations \u{2014} Sentiment of user messages",
        "Knowledge \u{2014} Knowledge gaps",
        "Usage \u{2014} Totals",
        CYRILLIC,
        GREEK,
    ] {
        assert!(csv.contains(expected), "{expected} in {csv}");
    }
    assert!(!csv.contains("Left out"));

    let text = pdf_text(&files[2]);
    for expected in [
        "Board pack \u{2014} Q4",
        CYRILLIC,
        GREEK,
        "Performance",
        "Per agent",
        "Conversations per day",
        "Sentiment of user messages",
        "Knowledge",
        "Usage",
        "Tokens per day",
        "A/B tests",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    assert!(!text.contains("Left out"));
    app.finish().await;
}
on_both!(composed_reports_cover_what_was_asked);

/// `member` joins `owner`'s personal workspace.
async fn join(app: &TestApp, owner: &User, member: &User) {
    let r = app
        .post(
            &format!("/api/team/workspaces/{}/members", owner.workspace_id),
            &owner.token,
            json!({"email": member.email, "role": "member"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

/// `member` is removed from `owner`'s personal workspace.
async fn leave(app: &TestApp, owner: &User, member: &User) {
    let path = format!(
        "/api/team/workspaces/{}/members/{}",
        owner.workspace_id, member.id
    );
    let r = app.delete(&path, &owner.token).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

async fn scheduled_reports_run_and_reach_their_recipients(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    join(&app, &alice, &bob).await;
    // A local server stands in for Slack: `hooks.slack.com` resolves to it.
    let (stand_in, seen) = recorder().await;
    let port = stand_in.rsplit(':').next().unwrap();
    let r = app
        .post(
            "/api/integrations/slack/install",
            &alice.token,
            json!({"config": {"webhook_url": format!("http://hooks.slack.com:{port}/services/T/B/X")}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let agent = app.agent(&alice, json!({})).await;
    let session = app.create_session(&alice, &agent).await;
    app.post_message(&alice, &session, "Hello").await;

    let report = |schedule: &str, recipients: Value, export: Value| {
        json!({"name": "Weekly board pack", "schedule": schedule, "recipients": recipients,
            "export": export})
    };
    let csv = json!({"format": "csv", "sections": ["performance"], "time_range": "7d"});
    let to_bob = json!({"user_ids": [bob.id], "integration_id": "slack"});
    for (body, status) in [
        (report("nope", to_bob.clone(), csv.clone()), 422),
        (report("0 0 30 2 *", to_bob.clone(), csv.clone()), 422),
        // Every second: more often than the instance allows (2 s here).
        (report("* * * * * *", to_bob.clone(), csv.clone()), 422),
        (
            report(
                "*/2 * * * * *",
                json!({"user_ids": [carol.id]}),
                csv.clone(),
            ),
            422,
        ),
        (
            report(
                "*/2 * * * * *",
                json!({"integration_id": "keyword-tagger"}),
                csv.clone(),
            ),
            422,
        ),
        (
            report(
                "*/2 * * * * *",
                to_bob.clone(),
                json!({"format": "csv", "sections": []}),
            ),
            422,
        ),
        (
            report("*/2 * * * * *", json!({"users": []}), csv.clone()),
            422,
        ),
    ] {
        let r = app
            .post("/api/analytics/reports", &alice.token, body.clone())
            .await;
        assert_problem(&r, status);
    }
    let created = app
        .post(
            "/api/analytics/reports",
            &alice.token,
            report("*/2 * * * * *", to_bob, csv),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["owner_id"], alice.id);
    assert_eq!(created.body["recipients"]["user_ids"], json!([bob.id]));
    assert_eq!(created.body["recipients"]["integration_id"], "slack");
    assert_eq!(created.body["sections"], json!(["performance"]));
    assert_eq!(created.body["time_range"], "7d");
    assert!(created.body["next_run_at"].is_string());

    // Members of the workspace see it; others do not.
    let listed = app.get("/api/analytics/reports", &bob.token).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["items"][0]["id"], id);
    let theirs = app.get("/api/analytics/reports", &carol.token).await;
    assert_eq!(theirs.body["items"], json!([]));
    assert_problem(
        &app.get(&format!("/api/analytics/reports/{id}"), &carol.token)
            .await,
        404,
    );

    // The scheduler runs it as alice; bob, a recipient, can read and download the export.
    let export_id = eventually("a scheduled run", || async {
        let r = app
            .get(&format!("/api/analytics/reports/{id}"), &alice.token)
            .await;
        r.body["last_export_id"].as_str().map(str::to_owned)
    })
    .await;
    let done = app.export_done(&bob.token, &export_id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["report_id"], id);
    let (content_type, file) = app
        .download(&bob.token, done["download_url"].as_str().unwrap())
        .await;
    assert!(content_type.starts_with("text/csv"));
    assert!(String::from_utf8(file).unwrap().contains("Performance"));
    assert_problem(
        &app.get(&format!("/api/analytics/export/{export_id}"), &carol.token)
            .await,
        404,
    );
    // And Slack hears of it, with the link.
    let log = &seen;
    let post = eventually("a post to Slack", move || async move {
        log.lock().unwrap().first().map(|(_, body)| body.clone())
    })
    .await;
    assert!(post.contains("Weekly board pack"), "{post}");
    assert!(
        post.contains("https://nova.example.com/api/analytics/export/"),
        "{post}"
    );

    // A recipient who leaves the workspace can no longer read the report's exports.
    leave(&app, &alice, &bob).await;
    assert_problem(
        &app.get(&format!("/api/analytics/export/{export_id}"), &bob.token)
            .await,
        404,
    );
    join(&app, &alice, &bob).await;
    // A report whose owner leaves the workspace stops.
    let bobs = app
        .post(
            "/api/analytics/reports",
            &bob.token,
            json!({"name": "Bob's", "schedule": "*/2 * * * * *",
                "export": {"format": "json", "workspace_id": alice.workspace_id}}),
        )
        .await;
    assert_eq!(bobs.status, 201, "{:?}", bobs.body);
    let bobs_path = format!(
        "/api/analytics/reports/{}",
        bobs.body["id"].as_str().unwrap()
    );
    leave(&app, &alice, &bob).await;
    let stopped = eventually("the report to stop", || async {
        let r = app.get(&bobs_path, &alice.token).await;
        r.body["next_run_at"].is_null().then_some(r.body)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let later = app.get(&bobs_path, &alice.token).await;
    assert_eq!(
        later.body["last_run_at"], stopped["last_run_at"],
        "no run after it stopped"
    );
    join(&app, &alice, &bob).await;
    // Running it by hand and deleting it are for its owner (or a workspace admin).
    let run = format!("/api/analytics/reports/{id}/run");
    assert_problem(&app.post(&run, &bob.token, json!({})).await, 403);
    let ran = app.post(&run, &alice.token, json!({})).await;
    assert_eq!(ran.status, 202, "{:?}", ran.body);
    assert_eq!(ran.body["report_id"], id);
    let path = format!("/api/analytics/reports/{id}");
    assert_problem(&app.delete(&path, &bob.token).await, 403);
    assert_eq!(app.delete(&path, &alice.token).await.status, 204);
    assert_problem(&app.get(&path, &alice.token).await, 404);
    app.finish().await;
}
on_both!(scheduled_reports_run_and_reach_their_recipients, |c| {
    c.resolve = vec![("hooks.slack.com".into(), [127, 0, 0, 1].into())];
    c.public_url = Some("https://nova.example.com".into());
    c.report_min_interval_secs = 2;
});
