//! Composed reports: sections, agents and days chosen by the caller, rendered by every
//! built-in exporter; and scheduled reports.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};
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
        replies["Value"], 3,
        "the replies to the two agents' three messages"
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
