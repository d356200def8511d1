use serde_json::json;

use crate::helpers::{TestApp, assert_problem, column};
use crate::on_both;

const REFUNDS: &str = "Refund policy\n\nCustomers may return any item within 30 days of delivery for a full refund. \
The item must be unused and in its original packaging.\n\nRefunds are issued to the original payment method \
within 5 business days after we receive the return.";

async fn documents_versions_and_search(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let agent = app.project(&alice, json!({"name": "Support"})).await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();

    let created = app
        .post(
            "/api/knowledge/documents",
            &alice.token,
            json!({
                "title": "Refund policy", "content": REFUNDS, "file_type": "md",
                "category": "Policies", "tags": ["Billing"], "project_ids": [agent_id]
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["current_version"], 1);
    assert_eq!(created.body["category"], "policies");
    assert_eq!(created.body["tags"], json!(["billing"]));
    assert_eq!(created.body["project_ids"], json!([agent_id]));
    assert!(created.body["chunks"].as_i64().unwrap() >= 1);
    assert_eq!(created.body["content"], REFUNDS);

    let html = "<html><head><script>var secret = 'refund';</script></head><body><h1>Shipping</h1>\
        <p>Orders ship within 2 days. Express delivery arrives the next day.</p></body></html>";
    let shipping = app
        .post("/api/knowledge/documents", &alice.token, json!({"title": "Shipping guide", "content": html, "file_type": "html", "category": "guides"}))
        .await;
    assert_eq!(shipping.status, 201);
    let faq = app
        .post("/api/knowledge/documents", &alice.token, json!({"title": "FAQ", "content": r#"{"faq": [{"q": "Can I get a refund after 30 days?", "a": "Only store credit."}]}"#, "file_type": "json"}))
        .await;
    assert_eq!(faq.status, 201);

    // The same content again is reported, not indexed twice.
    let dup = app
        .post(
            "/api/knowledge/documents",
            &alice.token,
            json!({"title": "Copy", "content": REFUNDS, "file_type": "md"}),
        )
        .await;
    assert_problem(&dup, 409);
    assert!(dup.body["detail"].as_str().unwrap().contains(&id));
    for (bad, field) in [
        (
            json!({"title": "", "content": "x", "file_type": "txt"}),
            "title",
        ),
        (
            json!({"title": "x", "content": "  ", "file_type": "txt"}),
            "content",
        ),
        (
            json!({"title": "x", "content": "x", "file_type": "txt", "project_ids": ["0190a6b0-0000-7000-8000-000000000000"]}),
            "project_ids",
        ),
    ] {
        let r = app
            .post("/api/knowledge/documents", &alice.token, bad)
            .await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    assert_problem(
        &app.post(
            "/api/knowledge/documents",
            &alice.token,
            json!({"title": "x", "content": "x", "file_type": "exe"}),
        )
        .await,
        422,
    );

    // Search: relevance, snippets, filters; script text is not indexed.
    let hits = app
        .get("/api/knowledge/search?q=refund", &alice.token)
        .await;
    assert_eq!(hits.status, 200, "{:?}", hits.body);
    let titles = column(&hits.body, "results", "title");
    assert!(
        titles.contains(&"Refund policy") && titles.contains(&"FAQ"),
        "{titles:?}"
    );
    assert!(
        !titles.contains(&"Shipping guide"),
        "script content is not text"
    );
    assert!(
        hits.body["results"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>")
    );
    let scores: Vec<f64> = hits.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {scores:?}"
    );
    let phrase = app
        .get(
            "/api/knowledge/search?q=%22express%20delivery%22",
            &alice.token,
        )
        .await;
    assert_eq!(column(&phrase.body, "results", "title"), ["Shipping guide"]);
    let by_agent = app
        .get(
            &format!("/api/knowledge/search?q=refund&project_id={agent_id}"),
            &alice.token,
        )
        .await;
    assert_eq!(
        column(&by_agent.body, "results", "title"),
        ["Refund policy"]
    );
    let by_tag = app
        .get("/api/knowledge/search?q=refund&tag=billing", &alice.token)
        .await;
    assert_eq!(column(&by_tag.body, "results", "title"), ["Refund policy"]);
    let by_type = app
        .get(
            "/api/knowledge/search?q=refund&file_type=json",
            &alice.token,
        )
        .await;
    assert_eq!(column(&by_type.body, "results", "title"), ["FAQ"]);
    let by_category = app
        .get(
            "/api/knowledge/search?q=delivery&category=guides",
            &alice.token,
        )
        .await;
    assert_eq!(
        column(&by_category.body, "results", "title"),
        ["Shipping guide"]
    );
    let injection = app
        .get(
            "/api/knowledge/search?q=refund%20OR%20NOT%20*",
            &alice.token,
        )
        .await;
    assert_eq!(injection.status, 200);
    assert_problem(
        &app.get("/api/knowledge/search?q=%3B%3B", &alice.token)
            .await,
        400,
    );
    let first = app
        .get("/api/knowledge/search?q=refund&limit=1", &alice.token)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/knowledge/search?q=refund&limit=1&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_ne!(
        second.body["results"][0]["chunk_id"],
        first.body["results"][0]["chunk_id"]
    );
    // Bob sees none of Alice's documents.
    assert!(
        app.get("/api/knowledge/search?q=refund", &bob.token)
            .await
            .body["results"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_problem(
        &app.get(&format!("/api/knowledge/documents/{id}"), &bob.token)
            .await,
        404,
    );

    // Versions: the index follows the current version; the diff shows the change.
    let path = format!("/api/knowledge/documents/{id}");
    let v2 = REFUNDS.replace("30 days", "60 days");
    let added = app
        .post(
            &format!("{path}/versions"),
            &alice.token,
            json!({"content": v2, "note": "longer window"}),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["version"], 2);
    assert_problem(
        &app.post(
            &format!("{path}/versions"),
            &alice.token,
            json!({"content": v2}),
        )
        .await,
        409,
    );
    assert_problem(
        &app.post(
            &format!("{path}/versions"),
            &bob.token,
            json!({"content": "x"}),
        )
        .await,
        404,
    );
    let now60 = app
        .get("/api/knowledge/search?q=60%20days", &alice.token)
        .await;
    assert_eq!(column(&now60.body, "results", "title"), ["Refund policy"]);
    assert_eq!(now60.body["results"][0]["version"], 2);
    let old30 = app
        .get(
            "/api/knowledge/search?q=%2230%20days%20of%20delivery%22",
            &alice.token,
        )
        .await;
    assert!(
        old30.body["results"].as_array().unwrap().is_empty(),
        "the old version left the index"
    );
    let versions = app.get(&format!("{path}/versions"), &alice.token).await;
    assert_eq!(
        versions.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    let diff = app
        .get(&format!("{path}/versions/2/diff"), &alice.token)
        .await;
    assert_eq!(diff.status, 200, "{:?}", diff.body);
    assert_eq!(
        (diff.body["added"].as_i64(), diff.body["removed"].as_i64()),
        (Some(1), Some(1))
    );
    let changed: Vec<(&str, &str)> = diff.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] != " ")
        .map(|l| (l["op"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert!(
        changed[0].0 == "-"
            && changed[0].1.contains("30 days")
            && changed[1].0 == "+"
            && changed[1].1.contains("60 days"),
        "{changed:?}"
    );
    assert_problem(
        &app.get(&format!("{path}/versions/1/diff"), &alice.token)
            .await,
        422,
    );
    assert_problem(
        &app.get(&format!("{path}/versions/9/diff"), &alice.token)
            .await,
        404,
    );

    // Listing with filters, changing and deleting.
    let list = app
        .get(
            &format!("/api/knowledge/documents?project_id={agent_id}"),
            &alice.token,
        )
        .await;
    assert_eq!(column(&list.body, "items", "title"), ["Refund policy"]);
    let all = app
        .get("/api/knowledge/documents?limit=2", &alice.token)
        .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    assert!(all.body["next_cursor"].is_string());
    let typed = app
        .get(
            "/api/knowledge/documents?file_type=html&q=ship",
            &alice.token,
        )
        .await;
    assert_eq!(column(&typed.body, "items", "title"), ["Shipping guide"]);
    let renamed = app
        .put(
            &path,
            &alice.token,
            json!({"title": "Refunds & returns", "tags": ["billing", "returns"]}),
        )
        .await;
    assert_eq!(renamed.body["title"], "Refunds & returns");
    assert_eq!(renamed.body["current_version"], 2);
    assert_eq!(app.delete(&path, &alice.token).await.status, 204);
    assert_problem(&app.get(&path, &alice.token).await, 404);
    let gone = app
        .get("/api/knowledge/search?q=refund", &alice.token)
        .await;
    assert_eq!(
        column(&gone.body, "results", "title"),
        ["FAQ"],
        "a deleted document leaves the index"
    );
}
on_both!(documents_versions_and_search);

/// A word found in many chunks: pages of its results, some ranked from the chunks that repeat
/// it and the later ones from every match, join into one ranking with no gap or repeat.
async fn frequent_word_ranks_alike_on_every_page(app: TestApp) {
    let alice = app.register("alice").await;
    const FILLER: [&str; 12] = [
        "orders",
        "arrive",
        "quickly",
        "when",
        "customers",
        "choose",
        "standard",
        "shipping",
        "through",
        "our",
        "partner",
        "network",
    ];
    // Paragraphs of about 720 characters, one chunk each: the first 12 say "zephyr" twice,
    // the next 24 once, the last 4 not at all; then a short chunk (about 300) that says it once.
    let filler = |i: usize, n: usize| -> Vec<&str> {
        (0..n).map(|j| FILLER[(i * 7 + j * 5) % 12]).collect()
    };
    let paragraphs: Vec<String> = (0..40)
        .map(|i| {
            let mut words = filler(i, 100);
            let times = if i < 12 {
                2
            } else if i < 36 {
                1
            } else {
                0
            };
            for k in 0..times {
                words[10 + 40 * k] = "zephyr";
            }
            words.join(" ") + "."
        })
        .chain([format!(
            "A short note about zephyr: {}.",
            filler(0, 38).join(" ")
        )])
        .collect();
    let doc = app
        .post(
            "/api/knowledge/documents",
            &alice.token,
            json!({"title": "Zephyr", "content": paragraphs.join("\n\n"), "file_type": "txt"}),
        )
        .await;
    assert_eq!(doc.status, 201, "{:?}", doc.body);
    assert_eq!(doc.body["chunks"], 41);

    let mut hits = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/api/knowledge/search?q=zephyr&limit=5&cursor={cursor}"),
                &alice.token,
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        hits.extend(page.body["results"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(hits.len(), 37, "every chunk with the word, once");
    let mut chunk_ids: Vec<&str> = hits
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap())
        .collect();
    chunk_ids.sort_unstable();
    chunk_ids.dedup();
    assert_eq!(chunk_ids.len(), 37);
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "scores fall page after page: {scores:?}"
    );
    let positions: Vec<i64> = hits
        .iter()
        .map(|h| h["position"].as_i64().unwrap())
        .collect();
    let last_repeated = positions.iter().rposition(|p| *p < 12).unwrap();
    let first_single = positions.iter().position(|p| (12..36).contains(p)).unwrap();
    assert!(
        last_repeated < first_single,
        "chunks that repeat the word come first: {positions:?}"
    );
}
on_both!(frequent_word_ranks_alike_on_every_page);

async fn document_permissions(app: TestApp) {
    let alice = app.register("alice").await;
    let mia = app.register("mia").await;
    let ws = app
        .post(
            "/api/team/workspaces",
            &alice.token,
            json!({"name": "Team"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/team/workspaces/{ws}/members"),
        &alice.token,
        json!({"email": mia.email, "role": "member"}),
    )
    .await;
    let doc = app
        .post("/api/knowledge/documents", &alice.token, json!({"title": "Handbook", "content": "Holidays: 25 days a year.", "file_type": "txt", "workspace_id": ws}))
        .await;
    let id = doc.body["id"].as_str().unwrap().to_owned();
    // A member reads and searches it, and adds documents of their own, but does not change Alice's.
    assert_eq!(
        app.get(&format!("/api/knowledge/documents/{id}"), &mia.token)
            .await
            .status,
        200
    );
    assert_eq!(
        column(
            &app.get("/api/knowledge/search?q=holidays", &mia.token)
                .await
                .body,
            "results",
            "title"
        ),
        ["Handbook"]
    );
    assert_problem(
        &app.put(
            &format!("/api/knowledge/documents/{id}"),
            &mia.token,
            json!({"title": "Mine"}),
        )
        .await,
        403,
    );
    assert_problem(
        &app.delete(&format!("/api/knowledge/documents/{id}"), &mia.token)
            .await,
        403,
    );
    assert_problem(
        &app.post(
            &format!("/api/knowledge/documents/{id}/versions"),
            &mia.token,
            json!({"content": "Holidays: 40 days."}),
        )
        .await,
        403,
    );
    let own = app.post("/api/knowledge/documents", &mia.token, json!({"title": "Notes", "content": "My notes.", "file_type": "txt", "workspace_id": ws})).await;
    assert_eq!(own.status, 201);
    assert_eq!(
        app.delete(
            &format!(
                "/api/knowledge/documents/{}",
                own.body["id"].as_str().unwrap()
            ),
            &mia.token
        )
        .await
        .status,
        204
    );
    // The owner (an admin of the workspace) may change anyone's.
    app.post(
        &format!("/api/team/workspaces/{ws}/members"),
        &alice.token,
        json!({"email": "nobody@example.com", "role": "member"}),
    )
    .await;
    let mias = app.post("/api/knowledge/documents", &mia.token, json!({"title": "Mia's", "content": "Mia's text.", "file_type": "txt", "workspace_id": ws})).await;
    assert_eq!(
        app.put(
            &format!(
                "/api/knowledge/documents/{}",
                mias.body["id"].as_str().unwrap()
            ),
            &alice.token,
            json!({"category": "hr"})
        )
        .await
        .status,
        200
    );
}
on_both!(document_permissions);

async fn agents_answer_from_knowledge(app: TestApp) {
    let alice = app.register("alice").await;
    let agent = app
        .project(
            &alice,
            json!({"name": "Support", "settings": {"fallback_message": "Let me ask a colleague."}}),
        )
        .await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let doc = app
        .post("/api/knowledge/documents", &alice.token, json!({"title": "Refund policy", "content": REFUNDS, "file_type": "md", "project_ids": [agent_id]}))
        .await;
    let doc_id = doc.body["id"].as_str().unwrap().to_owned();
    let session = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"agent_id": agent_id}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |text: &str| {
        let app = app.clone();
        let (token, session, text) = (alice.token.clone(), session.clone(), text.to_owned());
        async move {
            app.post(
                &format!("/api/chat/sessions/{session}/messages"),
                &token,
                json!({"content": text}),
            )
            .await
            .body
        }
    };

    // Without a model, the best passage answers, citing its document and version.
    let answered = ask("How many days do I have to return an item for a refund?").await;
    let reply = &answered["reply"];
    assert_eq!(reply["status"], "ok", "{answered}");
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .contains("within 30 days"),
        "{reply}"
    );
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .ends_with("Source: Refund policy")
    );
    assert_eq!(reply["citations"][0]["document_id"], doc_id.as_str());
    assert_eq!(reply["citations"][0]["version"], 1);
    assert!(reply["citations"][0]["confidence"].as_f64().unwrap() >= 0.5);
    let rated = app
        .post(
            &format!(
                "/api/chat/sessions/{session}/messages/{}/rating",
                reply["id"].as_str().unwrap()
            ),
            &alice.token,
            json!({"rating": 4}),
        )
        .await;
    assert_eq!(rated.status, 200);

    // Below the threshold: the fallback, unanswered, and a knowledge gap.
    for text in ["Do you ship to Mars?", "Do you ship to mars"] {
        let missed = ask(text).await;
        assert_eq!(missed["reply"]["status"], "unanswered");
        assert_eq!(missed["reply"]["content"], "Let me ask a colleague.");
        assert!(missed["reply"]["citations"].is_null());
    }

    // A new version: answers follow it.
    app.post(
        &format!("/api/knowledge/documents/{doc_id}/versions"),
        &alice.token,
        json!({"content": REFUNDS.replace("30 days", "60 days")}),
    )
    .await;
    let again = ask("How many days do I have to return an item for a refund?").await;
    assert!(
        again["reply"]["content"]
            .as_str()
            .unwrap()
            .contains("within 60 days")
    );
    assert_eq!(again["reply"]["citations"][0]["version"], 2);
    let versions = app
        .get(
            &format!("/api/knowledge/documents/{doc_id}/versions"),
            &alice.token,
        )
        .await;
    let counts: Vec<(i64, i64)> = versions.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["answer_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(2, 1), (1, 1)], "each version's impact on answers");

    let analytics = app.get("/api/knowledge/analytics", &alice.token).await;
    assert_eq!(analytics.status, 200, "{:?}", analytics.body);
    assert_eq!(analytics.body["total_documents"], 1);
    let top = &analytics.body["most_referenced"][0];
    assert_eq!(
        (top["document_id"].as_str(), top["reference_count"].as_i64()),
        (Some(doc_id.as_str()), Some(2))
    );
    assert!(
        (top["effectiveness_score"].as_f64().unwrap() - 0.8).abs() < 1e-9,
        "one answer rated 4 of 5"
    );
    let gap = &analytics.body["knowledge_gaps"][0];
    assert_eq!(gap["topic"], "Do you ship to Mars?");
    assert_eq!(gap["occurrences"], 2);
    assert!(gap["confidence"].as_f64().unwrap() < 0.5);
    assert_eq!(gap["suggested_documents"].as_array().unwrap().len(), 1);

    // With a model, the passages go into the prompt and the reply cites them.
    app.answer_with_echo(&alice, &agent_id).await;
    let modelled = ask("How many days do I have to return an item for a refund?").await;
    assert_eq!(modelled["reply"]["status"], "ok");
    assert_eq!(
        modelled["reply"]["citations"][0]["document_id"],
        doc_id.as_str()
    );
    let bob = app.register("bob").await;
    assert!(
        app.get("/api/knowledge/analytics", &bob.token).await.body["most_referenced"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
on_both!(agents_answer_from_knowledge);

/// Posts a bulk upload; the status and the JSON answer.
async fn upload(
    app: &TestApp,
    token: &str,
    form: reqwest::multipart::Form,
) -> (u16, serde_json::Value) {
    let r = app
        .multipart("/api/knowledge/upload/bulk", token, form)
        .await;
    (r.status, r.body)
}

/// The upload's status once every file is done (within 10 s).
async fn until_done(app: &TestApp, token: &str, upload_id: &str) -> serde_json::Value {
    for _ in 0..100 {
        let status = app
            .get(&format!("/api/knowledge/upload/bulk/{upload_id}"), token)
            .await
            .body;
        if status["done"] == true {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("upload {upload_id} not done within 10 s");
}

async fn bulk_upload_with_progress(app: TestApp) {
    use reqwest::multipart::{Form, Part};
    let alice = app.register("alice").await;
    let mut notes = crate::helpers::connect(
        app.post("/api/realtime/tickets", &alice.token, json!({}))
            .await
            .body["websocket_url"]
            .as_str()
            .unwrap(),
    )
    .await
    .unwrap();
    let file = |name: &str, bytes: &[u8]| Part::bytes(bytes.to_vec()).file_name(name.to_owned());
    let form = Form::new()
        .part("files", file("returns.md", REFUNDS.as_bytes()))
        .part(
            "files",
            file(
                "shipping.html",
                b"<h1>Shipping</h1><p>Parcels ship in two days.</p>",
            ),
        )
        .part("files", file("prices.csv", b"plan,price\npro,10\nteam,25"))
        .part(
            "files",
            file(
                "faq.json",
                br#"{"q": "Opening hours?", "a": "Nine to five."}"#,
            ),
        )
        .part("files", file("broken.json", b"{\"q\": "))
        .part("files", file("copy-of-returns.md", REFUNDS.as_bytes()))
        .part("files", file("tool.exe", b"MZ\x90\x00"))
        .text("category", "Support")
        .text("tags", "faq, policies");
    let (status, accepted) = upload(&app, &alice.token, form).await;
    assert_eq!(status, 202);
    let upload_id = accepted["upload_id"].as_str().unwrap().to_owned();
    let statuses = column(&accepted, "files", "status");
    assert_eq!(
        statuses,
        [
            "queued",
            "queued",
            "queued",
            "queued",
            "queued",
            "duplicate",
            "failed"
        ]
    );
    assert!(
        accepted["files"][5]["reason"]
            .as_str()
            .unwrap()
            .contains("returns.md")
    );
    assert!(
        accepted["files"][6]["reason"]
            .as_str()
            .unwrap()
            .contains("unsupported")
    );

    // Progress until every file is done.
    let done = until_done(&app, &alice.token, &upload_id).await;
    assert_eq!(
        column(&done, "files", "status"),
        [
            "indexed",
            "indexed",
            "indexed",
            "indexed",
            "failed",
            "duplicate",
            "failed"
        ]
    );
    assert!(
        done["files"][4]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    // The uploader heard each step.
    let events = crate::helpers::events_until(&mut notes, |e| {
        e["file_name"] == "faq.json" && e["status"] == "indexed"
    })
    .await;
    assert!(
        events
            .iter()
            .any(|e| e["file_name"] == "returns.md" && e["status"] == "extracting")
    );

    let doc = done["files"][0]["document_id"].as_str().unwrap();
    let detail = app
        .get(&format!("/api/knowledge/documents/{doc}"), &alice.token)
        .await;
    assert_eq!(detail.body["title"], "returns");
    assert_eq!(detail.body["category"], "support");
    assert_eq!(detail.body["tags"], json!(["faq", "policies"]));
    let hits = app
        .get("/api/knowledge/search?q=parcels", &alice.token)
        .await;
    assert_eq!(column(&hits.body, "results", "title"), ["shipping"]);

    // Uploading the same file again: reported as a duplicate at once.
    let (_, again) = upload(
        &app,
        &alice.token,
        Form::new().part("files", file("returns-again.md", REFUNDS.as_bytes())),
    )
    .await;
    assert_eq!(again["files"][0]["status"], "duplicate");
    let bob = app.register("bob").await;
    assert_problem(
        &app.get(
            &format!("/api/knowledge/upload/bulk/{upload_id}"),
            &bob.token,
        )
        .await,
        404,
    );
    // A misspelt option is refused by name rather than ignored (the files would be attached
    // to no agent), and so is a file sent under another field name.
    let misspelt = Form::new()
        .part(
            "files",
            Part::bytes(b"A note.".to_vec()).file_name("note.txt"),
        )
        .text("project_id", uuid::Uuid::new_v4().to_string());
    let (status, body) = upload(&app, &alice.token, misspelt).await;
    assert_eq!(status, 422, "{body:?}");
    assert_eq!(body["errors"][0]["field"], "project_id");
    let wrong_name = Form::new().part(
        "file",
        Part::bytes(b"A note.".to_vec()).file_name("note.txt"),
    );
    let (status, body) = upload(&app, &alice.token, wrong_name).await;
    assert_eq!(status, 422, "{body:?}");
    assert_eq!(body["errors"][0]["field"], "file");
    let (status, _) = upload(&app, &alice.token, Form::new().text("category", "x")).await;
    assert_eq!(status, 422);
}
on_both!(bulk_upload_with_progress);

/// A one-page PDF that says `text`, made with lopdf.
fn pdf(text: &str) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
            Operation::new("Tj", vec![Object::string_literal(text)]),
            Operation::new("ET", vec![]),
        ],
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
    let page_id = doc.add_object(
        dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
    );
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// A DOCX whose paragraphs are `paragraphs`, made with zip.
fn docx(paragraphs: &[&str]) -> Vec<u8> {
    use std::io::Write;
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>"))
        .collect();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(xml.as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}

async fn pdf_and_docx_uploads(app: TestApp) {
    use reqwest::multipart::{Form, Part};
    let alice = app.register("alice").await;
    let file = |name: &str, bytes: Vec<u8>| Part::bytes(bytes).file_name(name.to_owned());
    let form = Form::new()
        .part(
            "files",
            file(
                "warranty.pdf",
                pdf("The warranty covers manufacturing defects for two years."),
            ),
        )
        .part(
            "files",
            file(
                "onboarding.docx",
                docx(&[
                    "Welcome aboard!",
                    "Your laptop arrives on the first morning.",
                ]),
            ),
        )
        .part(
            "files",
            file(
                "corrupt.pdf",
                b"%PDF-1.7\nthis is not really a pdf".to_vec(),
            ),
        )
        .part(
            "files",
            file("corrupt.docx", b"PK\x03\x04 broken archive".to_vec()),
        );
    let (_, accepted) = upload(&app, &alice.token, form).await;
    let done = until_done(&app, &alice.token, accepted["upload_id"].as_str().unwrap()).await;
    assert_eq!(
        column(&done, "files", "status"),
        ["indexed", "indexed", "failed", "failed"],
        "{done}"
    );
    assert!(done["files"][2]["reason"].as_str().unwrap().contains("PDF"));
    assert!(
        done["files"][3]["reason"]
            .as_str()
            .unwrap()
            .contains("DOCX")
    );
    let warranty = app
        .get(
            "/api/knowledge/search?q=manufacturing%20defects",
            &alice.token,
        )
        .await;
    assert_eq!(column(&warranty.body, "results", "title"), ["warranty"]);
    let laptop = app
        .get("/api/knowledge/search?q=laptop", &alice.token)
        .await;
    assert_eq!(column(&laptop.body, "results", "title"), ["onboarding"]);
    let doc = app
        .get(
            &format!(
                "/api/knowledge/documents/{}",
                done["files"][1]["document_id"].as_str().unwrap()
            ),
            &alice.token,
        )
        .await;
    assert_eq!(doc.body["file_type"], "docx");
    assert_eq!(
        doc.body["content"],
        "Welcome aboard!\nYour laptop arrives on the first morning.\n"
    );
}
on_both!(pdf_and_docx_uploads);

/// A PDF document gets a new version by uploading the new file: extracted by the upload job,
/// with its progress; the JSON form still works; permission is checked before the body.
async fn a_new_version_can_be_a_file(app: TestApp) {
    use reqwest::multipart::{Form, Part};
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.post(
        &format!("/api/team/workspaces/{}/members", alice.workspace_id),
        &alice.token,
        json!({"email": bob.email, "role": "member"}),
    )
    .await;
    let file = |name: &str, bytes: Vec<u8>| Part::bytes(bytes).file_name(name.to_owned());
    let form = Form::new().part(
        "files",
        file("warranty.pdf", pdf("The warranty lasts two years.")),
    );
    let (_, accepted) = upload(&app, &alice.token, form).await;
    let done = until_done(&app, &alice.token, accepted["upload_id"].as_str().unwrap()).await;
    let doc_id = done["files"][0]["document_id"].as_str().unwrap().to_owned();
    let versions = format!("/api/knowledge/documents/{doc_id}/versions");

    let new_pdf = || {
        Form::new()
            .part(
                "file",
                file("warranty-v2.pdf", pdf("The warranty now lasts five years.")),
            )
            .text("note", "Extended warranty")
    };
    // Bob is a member but not the author: refused before his file is read.
    assert_problem(&app.multipart(&versions, &bob.token, new_pdf()).await, 403);
    // Parts the endpoint does not know are named; a form without a file is refused.
    let typo = Form::new()
        .part("files", file("v2.pdf", pdf("x")))
        .text("note", "n");
    let r = app.multipart(&versions, &alice.token, typo).await;
    assert_problem(&r, 422);
    assert!(
        r.body["detail"].as_str().unwrap().contains("files"),
        "{:?}",
        r.body
    );
    let r = app
        .multipart(&versions, &alice.token, Form::new().text("note", "n"))
        .await;
    assert_problem(&r, 422);

    let r = app.multipart(&versions, &alice.token, new_pdf()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let upload_id = r.body["upload_id"].as_str().unwrap().to_owned();
    let done = until_done(&app, &alice.token, &upload_id).await;
    assert_eq!(done["files"][0]["status"], "indexed", "{done}");
    assert_eq!(done["files"][0]["document_id"], doc_id.as_str());
    let list = app.get(&versions, &alice.token).await;
    assert_eq!(list.body["items"][0]["version"], 2, "{:?}", list.body);
    assert_eq!(list.body["items"][0]["note"], "Extended warranty");
    let doc = app
        .get(&format!("/api/knowledge/documents/{doc_id}"), &alice.token)
        .await;
    assert!(
        doc.body["content"].as_str().unwrap().contains("five years"),
        "{:?}",
        doc.body
    );
    let found = app
        .get("/api/knowledge/search?q=five%20years", &alice.token)
        .await;
    assert_eq!(column(&found.body, "results", "title"), ["warranty"]);

    // The same file again repeats the current version: the file ends a duplicate.
    let r = app.multipart(&versions, &alice.token, new_pdf()).await;
    let done = until_done(&app, &alice.token, r.body["upload_id"].as_str().unwrap()).await;
    assert_eq!(done["files"][0]["status"], "duplicate", "{done}");
    // A file that cannot be read fails with the reason, and the document stays at version 2.
    let broken = Form::new().part("file", file("v3.pdf", b"%PDF-1.7 broken".to_vec()));
    let r = app.multipart(&versions, &alice.token, broken).await;
    let done = until_done(&app, &alice.token, r.body["upload_id"].as_str().unwrap()).await;
    assert_eq!(done["files"][0]["status"], "failed", "{done}");
    assert!(done["files"][0]["reason"].as_str().unwrap().contains("PDF"));

    // The JSON form still works.
    let r = app
        .post(
            &versions,
            &alice.token,
            json!({"content": "The warranty lasts ten years.", "note": "typed"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["version"], 3);
}
on_both!(a_new_version_can_be_a_file);

/// A host killed with SIGKILL during a bulk upload loses no file: after a restart, every file
/// ends indexed or failed with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_upload_loses_no_file() {
    use reqwest::multipart::{Form, Part};
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("nova.db").display());
    let data_dir = dir.path().display().to_string();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("NOVA_DATA_DIR", data_dir.as_str()),
        ("NOVA_JOB_LEASE_SECS", "2"),
    ];
    let client = reqwest::Client::new();
    let (mut first, base) = crate::helpers::start_nova(&env).await;
    let session: serde_json::Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "alice@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let mut form = Form::new();
    for i in 0..40 {
        let body = format!(
            "Document {i}. {}",
            "Policies explained in detail. ".repeat(400)
        );
        form = form.part(
            "files",
            Part::bytes(body.into_bytes()).file_name(format!("doc-{i}.txt")),
        );
    }
    let accepted: serde_json::Value = client
        .post(format!("{base}/api/knowledge/upload/bulk"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_id = accepted["upload_id"].as_str().unwrap().to_owned();
    // Wait until the worker has started on the files, then kill it mid-work.
    let mut midway = serde_json::Value::Null;
    for _ in 0..500 {
        midway = client
            .get(format!("{base}/api/knowledge/upload/bulk/{upload_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if midway["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["status"] != "queued")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        midway["done"], false,
        "the host is killed while files are still waiting"
    );
    // Killed mid-work.
    let pid = first.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let _ = first.wait().await;

    let (_second, base) = crate::helpers::start_nova(&env).await;
    let mut status = serde_json::Value::Null;
    for _ in 0..600 {
        status = client
            .get(format!("{base}/api/knowledge/upload/bulk/{upload_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["done"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status["done"], true, "{status}");
    let files = status["files"].as_array().unwrap();
    assert_eq!(files.len(), 40);
    for f in files {
        match f["status"].as_str().unwrap() {
            "indexed" => assert!(f["document_id"].is_string()),
            "failed" => assert!(f["reason"].is_string()),
            other => panic!("a file ended {other}: {f}"),
        }
    }
    assert!(files.iter().all(|f| f["status"] == "indexed"), "{status}");
}

/// Lines that differ everywhere between two texts: every other line changes.
fn long_text(lines: usize, variant: &str) -> String {
    (0..lines)
        .map(|i| {
            if i % 2 == 0 {
                format!("line {i} stays\n")
            } else {
                format!("line {i} {variant}\n")
            }
        })
        .collect()
}

async fn a_huge_diff_stalls_no_other_request(app: TestApp) {
    let alice = app.register("alice").await;
    let created = app
        .post(
            "/api/knowledge/documents",
            &alice.token,
            json!({"title": "Long", "content": long_text(200_000, "before"), "file_type": "txt"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let path = format!(
        "/api/knowledge/documents/{}",
        created.body["id"].as_str().unwrap()
    );
    let added = app
        .post(
            &format!("{path}/versions"),
            &alice.token,
            json!({"content": long_text(200_000, "after")}),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);

    let diff = {
        let app = app.clone();
        let token = alice.token.clone();
        let path = path.clone();
        tokio::spawn(async move { app.get(&format!("{path}/versions/2/diff"), &token).await })
    };
    // While the diff is computed, other requests are answered at once.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let me = app.get("/api/user/me", &alice.token).await;
    assert_eq!(me.status, 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "a request waited {:?} behind a diff",
        started.elapsed()
    );
    let diff = diff.await.unwrap();
    assert_eq!(diff.status, 200, "{:?}", diff.body);
    // Past the deadline the diff may be coarser than the smallest one, never wrong: both
    // versions have 200,000 lines and half of them changed.
    let (added, removed) = (
        diff.body["added"].as_i64().unwrap(),
        diff.body["removed"].as_i64().unwrap(),
    );
    assert_eq!(added, removed);
    assert!((100_000..=200_000).contains(&added), "{added}");
    assert_eq!(diff.body["truncated"], true);
    assert_eq!(diff.body["lines"].as_array().unwrap().len(), 10_000);
}
on_both!(
    a_huge_diff_stalls_no_other_request,
    |c: &mut nova_host::Config| {
        c.max_body_bytes = 8 << 20;
    }
);

/// A job whose worker was killed during each of its three attempts (seeded in the database:
/// the API cannot crash a host) fails for good, and its file with it, instead of running again.
async fn a_job_that_killed_its_worker_three_times_fails_for_good(app: TestApp) {
    use nova_host::args;
    let alice = app.register("alice").await;
    let db = nova_host::db::Db::connect(&app.database_url).await.unwrap();
    let workspace: uuid::Uuid = alice.workspace_id.parse().unwrap();
    let user: uuid::Uuid = alice.id.parse().unwrap();
    let (upload, file, job) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let at = nova_host::db::now();
    let long_ago = at - chrono::Duration::minutes(10);
    db.execute(
        "INSERT INTO uploads (id, workspace_id, user_id, options, created_at) VALUES ($1, $2, $3, $4, $5)",
        args![
            upload,
            workspace,
            user,
            json!({"workspace_id": null, "category": "", "tags": [], "project_ids": []}),
            at
        ],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO upload_files (id, upload_id, position, file_name, size_bytes, sha256, content, status, updated_at)
         VALUES ($1, $2, 0, 'poison.txt', 5, 'x', $3, 'extracting', $4)",
        args![file, upload, b"hello".to_vec(), at],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO jobs (id, kind, payload, status, attempts, locked_until, claim, created_at, updated_at)
         VALUES ($1, 'knowledge.index_file', $2, 'running', 3, $3, $1, $3, $3)",
        args![job, json!({"file_id": file}), long_ago],
    )
    .await
    .unwrap();
    db.close().await;

    let status = until_done(&app, &alice.token, &upload.to_string()).await;
    let file = &status["files"][0];
    assert_eq!(file["status"], "failed", "{status}");
    assert!(
        file["reason"].as_str().unwrap().contains("stopped"),
        "{status}"
    );
}
on_both!(a_job_that_killed_its_worker_three_times_fails_for_good);

/// Uploads `bad` beside a small good file: `bad` fails with a reason that mentions `why`, and
/// the other file is indexed all the same.
async fn fails_alone(app: &TestApp, token: &str, bad: reqwest::multipart::Part, why: &str) {
    use reqwest::multipart::{Form, Part};
    let form = Form::new().part("files", bad).part(
        "files",
        Part::bytes(b"A small note.".to_vec()).file_name("small.txt"),
    );
    let (status, body) = upload(app, token, form).await;
    assert_eq!(status, 202, "{body}");
    let done = until_done(app, token, body["upload_id"].as_str().unwrap()).await;
    assert_eq!(done["files"][0]["status"], "failed", "{done}");
    assert!(
        done["files"][0]["reason"].as_str().unwrap().contains(why),
        "{done}"
    );
    assert_eq!(done["files"][1]["status"], "indexed", "{done}");
}

async fn an_upload_whose_text_is_over_the_document_cap_fails_alone(app: TestApp) {
    let alice = app.register("alice").await;
    let big = "word ".repeat(1_300_000); // 6.5 MB of text: under the 10 MiB file limit
    let bad = reqwest::multipart::Part::bytes(big.into_bytes()).file_name("big.txt");
    fails_alone(&app, &alice.token, bad, "5 MiB").await;
}
on_both!(an_upload_whose_text_is_over_the_document_cap_fails_alone);

async fn identical_documents_sent_at_once_make_one(app: TestApp) {
    let alice = app.register("alice").await;
    let sends = (0..10).map(|_| {
        let app = app.clone();
        let token = alice.token.clone();
        tokio::spawn(async move {
            app.post(
                "/api/knowledge/documents",
                &token,
                json!({"title": "Refunds", "content": REFUNDS, "file_type": "md"}),
            )
            .await
            .status
        })
    });
    let mut statuses = Vec::new();
    for send in sends.collect::<Vec<_>>() {
        statuses.push(send.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    let listed = app.get("/api/knowledge/documents", &alice.token).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}
on_both!(identical_documents_sent_at_once_make_one);

/// A PDF whose first page says `text` and whose other `pages - 1` pages each inflate a small
/// stream into `inflated` bytes of blanks: every page within any per-page limit, the whole far
/// past a total one.
fn pdf_bomb(text: &str, pages: usize, inflated: usize) -> Vec<u8> {
    use std::io::Write;

    use lopdf::{Object, Stream, dictionary};
    let mut doc = lopdf::Document::load_mem(&pdf(text)).unwrap();
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(b"BT ET\n").unwrap();
    deflate.write_all(&vec![b' '; inflated]).unwrap();
    let squeezed = deflate.finish().unwrap();
    let blank = doc.add_object(Stream::new(
        dictionary! { "Filter" => "FlateDecode" },
        squeezed,
    ));
    let pages_id = doc
        .catalog()
        .unwrap()
        .get(b"Pages")
        .unwrap()
        .as_reference()
        .unwrap();
    let mut kids: Vec<Object> = doc
        .get_object(pages_id)
        .unwrap()
        .as_dict()
        .unwrap()
        .get(b"Kids")
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    for _ in 1..pages {
        let page = doc.add_object(
            dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => blank },
        );
        kids.push(page.into());
    }
    let pages_dict = doc.get_object_mut(pages_id).unwrap().as_dict_mut().unwrap();
    pages_dict.set("Count", kids.len() as i64);
    pages_dict.set("Kids", kids);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

async fn a_pdf_that_inflates_past_the_total_budget_fails_alone(app: TestApp) {
    let alice = app.register("alice").await;
    // 40 pages of 2 MiB each: 80 MiB in all, over the 64 MiB budget.
    let bomb = pdf_bomb("The warranty covers two years.", 41, 2 << 20);
    assert!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
    let bad = reqwest::multipart::Part::bytes(bomb).file_name("bomb.pdf");
    fails_alone(&app, &alice.token, bad, "inflate").await;
}
on_both!(a_pdf_that_inflates_past_the_total_budget_fails_alone);

/// One worker; one user queues twenty files at once (twenty jobs in one transaction), then
/// another user one file: it is taken at its owner's first turn, next to the first files of
/// the long queue, not after all twenty.
async fn jobs_are_fair_between_users(app: TestApp) {
    use reqwest::multipart::{Form, Part};
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut many = Form::new();
    for i in 0..20 {
        let text = format!("{REFUNDS}\n\nNote number {i}.");
        many = many.part(
            "files",
            Part::bytes(text.into_bytes()).file_name(format!("note-{i}.md")),
        );
    }
    let (status, body) = upload(&app, &alice.token, many).await;
    assert_eq!(status, 202, "{body:?}");
    let alices = body["upload_id"].as_str().unwrap().to_owned();
    let one = Form::new().part(
        "files",
        Part::bytes(b"Opening hours: nine to five.".to_vec()).file_name("hours.md"),
    );
    let (status, body) = upload(&app, &bob.token, one).await;
    assert_eq!(status, 202, "{body:?}");
    let bobs = until_done(&app, &bob.token, body["upload_id"].as_str().unwrap()).await;
    let alices = until_done(&app, &alice.token, &alices).await;
    let finished = |file: &serde_json::Value| -> chrono::DateTime<chrono::Utc> {
        assert_eq!(file["status"], "indexed", "{file}");
        serde_json::from_value(file["updated_at"].clone()).unwrap()
    };
    let bobs_done = finished(&bobs["files"][0]);
    let after_bob = alices["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| finished(f) > bobs_done)
        .count();
    // First come, first served would finish all twenty first.
    assert!(
        after_bob >= 10,
        "only {after_bob} of alice's 20 files went after bob's"
    );
}
on_both!(jobs_are_fair_between_users, |c| c.job_workers = 1);

/// About `bytes` of prose from a small vocabulary, in paragraphs, ending with `last`.
fn prose(bytes: usize, seed: u64, last: &str) -> String {
    const WORDS: [&str; 16] = [
        "refund", "parcel", "invoice", "courier", "warranty", "account", "delivery", "order",
        "return", "billing", "support", "customer", "tracking", "payment", "address", "policy",
    ];
    let mut state = seed;
    let mut text = String::with_capacity(bytes + 1024);
    while text.len() < bytes {
        for _ in 0..12 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(WORDS[(state >> 60) as usize]);
            text.push(' ');
        }
        text.push_str(if state.is_multiple_of(7) {
            ".\n\n"
        } else {
            ". "
        });
    }
    text.push_str(last);
    text
}

/// A 10 MiB upload (two files of nearly 5 MiB) is indexed a batch at a time: logins and chat
/// messages sent while it is indexed all succeed, none waits anywhere near SQLite's 10 s busy
/// timeout, and every chunk is written in the end (the last sentence of each file is found).
async fn large_uploads_leave_logins_and_chat_working(app: TestApp) {
    let alice = app.register("alice").await;
    let agent = app.agent(&alice, json!({})).await;
    let session_id = app.create_session(&alice, &agent).await;
    let mut form = reqwest::multipart::Form::new();
    for (i, last) in [
        "Zebracorn closes the first file.",
        "Quokkafish closes the second.",
    ]
    .iter()
    .enumerate()
    {
        let text = prose(4_900_000, i as u64 + 1, last);
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(text.into_bytes()).file_name(format!("large-{i}.txt")),
        );
    }
    let (status, body) = upload(&app, &alice.token, form).await;
    assert_eq!(status, 202, "{body:?}");
    let upload_id = body["upload_id"].as_str().unwrap().to_owned();

    let mut slowest = std::time::Duration::ZERO;
    let mut rounds = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let started = std::time::Instant::now();
        let login = app.login(&alice).await;
        assert_eq!(login.status, 200, "{:?}", login.body);
        let posted = app
            .post_message(&alice, &session_id, "Where is my parcel?")
            .await;
        assert_eq!(posted.status, 201, "{:?}", posted.body);
        slowest = slowest.max(started.elapsed());
        rounds += 1;
        let progress = app
            .get(
                &format!("/api/knowledge/upload/bulk/{upload_id}"),
                &alice.token,
            )
            .await;
        if progress.body["done"] == true {
            assert_eq!(
                column(&progress.body, "files", "status"),
                ["indexed", "indexed"],
                "{:?}",
                progress.body
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not indexed in 3 minutes"
        );
    }
    assert!(
        rounds > 1,
        "the upload was indexed before anything interleaved"
    );
    // Half of SQLite's busy timeout: no write waited on the lock for long.
    assert!(
        slowest < std::time::Duration::from_secs(5),
        "a login and a message took {slowest:?}"
    );
    for word in ["zebracorn", "quokkafish"] {
        let found = app
            .get(&format!("/api/knowledge/search?q={word}"), &alice.token)
            .await;
        assert_eq!(found.status, 200, "{:?}", found.body);
        assert_eq!(
            found.body["results"].as_array().map(Vec::len),
            Some(1),
            "{word}: {:?}",
            found.body
        );
    }
}
on_both!(large_uploads_leave_logins_and_chat_working);
