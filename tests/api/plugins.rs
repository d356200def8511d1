use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, recorder};
use crate::on_both;

const HOSTILE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testing_hostile.wasm"));
const HOSTILE_MANIFEST: &str = include_str!(concat!(env!("OUT_DIR"), "/testing_hostile.toml"));

const POLICY: &str = "Refund policy. A refund policy applies to damaged items and late delivery. \
    Customers ask for a refund through the payment page; the refund policy covers card payments \
    and invoices. Shipping costs are refunded for defective items.";

/// Posts a plugin package as multipart; the status and body.
async fn upload(
    app: &TestApp,
    token: &str,
    manifest: &str,
    wasm: &[u8],
    sha256: Option<&str>,
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new()
        .text("manifest", manifest.to_owned())
        .part(
            "wasm",
            reqwest::multipart::Part::bytes(wasm.to_vec()).file_name("plugin.wasm"),
        );
    if let Some(digest) = sha256 {
        form = form.text("sha256", digest.to_owned());
    }
    let r = app.multipart("/api/plugins", token, form).await;
    (r.status, r.body)
}

/// `POST /api/knowledge/auto-tag` of the test policy text, as `user`.
async fn auto_tag(app: &TestApp, user: &crate::helpers::User) -> crate::helpers::Resp {
    app.post(
        "/api/knowledge/auto-tag",
        &user.token,
        json!({"text": POLICY}),
    )
    .await
}

fn listed<'a>(market: &'a Value, id: &str) -> &'a Value {
    market["plugins"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == id))
        .unwrap_or_else(|| panic!("{id} is not in the marketplace: {market}"))
}

async fn marketplace_install_and_auto_tag(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let market = app.get("/api/integrations/marketplace", &alice.token).await;
    assert_eq!(market.status, 200, "{:?}", market.body);
    let tagger = listed(&market.body, "keyword-tagger");
    assert_eq!(tagger["kind"], "auto-tagger");
    assert_eq!(tagger["builtin"], true);
    // Needing no settings and no capability beyond log and config, it runs uninstalled.
    assert_eq!(tagger["installation_state"], "enabled_by_default");
    assert_eq!(
        listed(&market.body, "slack")["installation_state"],
        "not_installed"
    );
    assert_eq!(tagger["sha256"].as_str().unwrap().len(), 64);
    assert!(tagger["config_schema"]["properties"]["max_tags"].is_object());
    let only_exporters = app
        .get(
            "/api/integrations/marketplace?kind=analytics-exporter",
            &alice.token,
        )
        .await;
    assert!(
        only_exporters.body["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "analytics-exporter")
    );
    let paged = app
        .get("/api/integrations/marketplace?limit=1", &alice.token)
        .await;
    assert_eq!(paged.body["plugins"].as_array().unwrap().len(), 1);

    // A new workspace tags with the built-in tagger at once; its admin may turn it off (and
    // on again) without installing it first.
    let r = auto_tag(&app, &bob).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["taggers"][0]["plugin_id"], "keyword-tagger",
        "{:?}",
        r.body
    );
    let off = app
        .post(
            "/api/integrations/keyword-tagger/disable",
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    assert_eq!(off.body["installation_state"], "disabled");
    let r = auto_tag(&app, &bob).await;
    assert_problem(&r, 409);
    let on = app
        .post(
            "/api/integrations/keyword-tagger/enable",
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(on.body["installation_state"], "enabled", "{:?}", on.body);
    let r = auto_tag(&app, &bob).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A plugin that needs settings is not on by default, and cannot be switched on uninstalled.
    let r = app
        .post("/api/integrations/slack/enable", &bob.token, json!({}))
        .await;
    assert_problem(&r, 404);

    // Settings are validated against the schema.
    let r = app
        .post(
            "/api/integrations/keyword-tagger/install",
            &alice.token,
            json!({"config": {"max_tags": 99}}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "config.max_tags");
    let r = app
        .post(
            "/api/integrations/keyword-tagger/install",
            &alice.token,
            json!({"config": {"max_tags": 3}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["installation_state"], "enabled");
    assert_eq!(r.body["installation"]["config"]["max_tags"], 3);
    let again = app
        .post(
            "/api/integrations/keyword-tagger/install",
            &alice.token,
            json!({}),
        )
        .await;
    assert_problem(&again, 409);
    // Bob is no admin of Alice's workspace.
    let r = app
        .post(
            &format!(
                "/api/integrations/keyword-tagger/disable?workspace_id={}",
                alice.workspace_id
            ),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);

    let r = app
        .post(
            "/api/knowledge/auto-tag",
            &alice.token,
            json!({"title": "Refunds", "text": POLICY}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let tags: Vec<&str> = r.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 3, "max_tags is honoured: {tags:?}");
    assert_eq!(tags[0], "refund policy", "{tags:?}");
    assert_eq!(r.body["tags"][0]["confidence"], 1.0);
    assert_eq!(r.body["tags"][0]["plugins"], json!(["keyword-tagger"]));
    assert_eq!(r.body["categories"][0]["name"], "billing", "{:?}", r.body);
    assert_eq!(r.body["taggers"][0]["status"], "ok");

    // A document of the workspace, by id.
    let doc = app
        .post(
            "/api/knowledge/documents",
            &alice.token,
            json!({"title": "Shipping", "content": "Delivery and tracking: every parcel ships with a tracking number. Courier delivery takes two days.", "file_type": "txt"}),
        )
        .await;
    let doc_id = doc.body["id"].as_str().unwrap();
    let r = app
        .post(
            "/api/knowledge/auto-tag",
            &alice.token,
            json!({"document_id": doc_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["document_id"], doc_id);
    assert_eq!(r.body["categories"][0]["name"], "shipping", "{:?}", r.body);
    let r = app
        .post(
            "/api/knowledge/auto-tag",
            &bob.token,
            json!({"document_id": doc_id}),
        )
        .await;
    assert_problem(&r, 404);
    let r = app
        .post(
            "/api/knowledge/auto-tag",
            &alice.token,
            json!({"text": "  "}),
        )
        .await;
    assert_problem(&r, 422);

    // The calls are logged.
    let log = app
        .get(
            &format!(
                "/api/plugins/keyword-tagger/invocations?workspace_id={}",
                alice.workspace_id
            ),
            &alice.token,
        )
        .await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i["status"] == "ok" && i["operation"] == "auto-tag")
    );
    let r = app
        .get(
            &format!(
                "/api/plugins/keyword-tagger/invocations?workspace_id={}",
                alice.workspace_id
            ),
            &bob.token,
        )
        .await;
    assert_problem(&r, 404);

    // Disabled: not called; enabled again; uninstalled.
    let r = app
        .post(
            "/api/integrations/keyword-tagger/disable",
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(r.body["installation_state"], "disabled");
    let r = auto_tag(&app, &alice).await;
    assert_problem(&r, 409);
    let r = app
        .post(
            "/api/integrations/keyword-tagger/enable",
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(r.body["installation_state"], "enabled");
    let r = app
        .delete("/api/integrations/keyword-tagger/install", &alice.token)
        .await;
    assert_eq!(r.status, 204);
    let market = app.get("/api/integrations/marketplace", &alice.token).await;
    // Uninstalled, the built-in tagger runs as shipped again.
    assert_eq!(
        listed(&market.body, "keyword-tagger")["installation_state"],
        "enabled_by_default"
    );
    let audit = app
        .get(
            &format!(
                "/api/audit-log?workspace_id={}&action=plugin",
                alice.workspace_id
            ),
            &alice.token,
        )
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "plugin.uninstall",
            "plugin.enable",
            "plugin.disable",
            "plugin.install"
        ]
    );
    app.finish().await;
}
on_both!(marketplace_install_and_auto_tag);

/// The invocation log keeps a plugin's latest `NOVA_PLUGIN_LOG_KEEP` calls.
async fn invocation_log_keeps_the_latest_calls(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for user in [&alice, &bob] {
        let r = app
            .post(
                "/api/integrations/keyword-tagger/install",
                &user.token,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    // Bob's one call stays in his workspace's log, however busy Alice's is.
    let r = auto_tag(&app, &bob).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut third_call = None;
    for i in 0..5 {
        if i == 2 {
            third_call = Some(chrono::Utc::now());
        }
        let r = auto_tag(&app, &alice).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let log = app
        .get(
            &format!(
                "/api/plugins/keyword-tagger/invocations?workspace_id={}",
                alice.workspace_id
            ),
            &alice.token,
        )
        .await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    let third_call = third_call.unwrap();
    for item in items {
        let at: chrono::DateTime<chrono::Utc> =
            item["created_at"].as_str().unwrap().parse().unwrap();
        assert!(at >= third_call, "an older call was kept: {item}");
    }
    let bobs = app
        .get(
            &format!(
                "/api/plugins/keyword-tagger/invocations?workspace_id={}",
                bob.workspace_id
            ),
            &bob.token,
        )
        .await;
    assert_eq!(
        bobs.body["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        bobs.body
    );
}
on_both!(invocation_log_keeps_the_latest_calls, |c| c
    .plugin_log_keep =
    3);

async fn hostile_plugins_fail_alone(app: TestApp) {
    let admin = app.register("admin").await;
    let user = app.register("user").await;

    let (status, body) = upload(&app, &user.token, HOSTILE_MANIFEST, HOSTILE_WASM, None).await;
    assert_eq!(status, 403, "{body}");
    // Permission comes before the body: a non-admin's malformed upload is a 403 too.
    let malformed = app
        .raw(
            reqwest::Method::POST,
            "/api/plugins",
            &user.token,
            "multipart/form-data",
            b"not multipart".to_vec(),
        )
        .await;
    assert_problem(&malformed, 403);
    // A package whose digest is not the one approved is refused.
    let (status, body) = upload(
        &app,
        &admin.token,
        HOSTILE_MANIFEST,
        HOSTILE_WASM,
        Some(&"0".repeat(64)),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "sha256");
    // Not a component at all.
    let (status, body) = upload(&app, &admin.token, HOSTILE_MANIFEST, b"\0asm garbage", None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "wasm");
    // Nor is the text format, which the engine could compile.
    let (status, body) = upload(&app, &admin.token, HOSTILE_MANIFEST, b"(component)", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("text format"),
        "{body}"
    );
    // A bad manifest names its field.
    let (status, body) = upload(
        &app,
        &admin.token,
        &HOSTILE_MANIFEST.replace("id = \"hostile\"", "id = \"Bad Id\""),
        HOSTILE_WASM,
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "id");
    // A component that imports capabilities its manifest does not declare is warned about.
    let quiet = HOSTILE_MANIFEST
        .replace(
            "capabilities = [\"log\", \"http\", \"kv\", \"events\"]",
            "capabilities = [\"log\"]",
        )
        .replace("http_hosts = [\"api.example.com\"]\n", "");
    assert_ne!(quiet, HOSTILE_MANIFEST, "the test manifest changed");
    let (status, body) = upload(&app, &admin.token, &quiet, HOSTILE_WASM, None).await;
    assert_eq!(status, 201, "{body}");
    let warning = body["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("`http`") && warning.contains("`kv`") && !warning.contains("`log`"),
        "{body}"
    );
    // Installed, its calls to what it was not granted are refused.
    let r = app
        .post("/api/integrations/hostile/install", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let refused = app
        .post(
            "/api/integrations/hostile/test",
            &admin.token,
            json!({"text": "kv"}),
        )
        .await;
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not granted"),
        "{:?}",
        refused.body
    );
    let r = app.delete("/api/plugins/hostile", &admin.token).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let (status, body) = upload(&app, &admin.token, HOSTILE_MANIFEST, HOSTILE_WASM, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["builtin"], false);
    // Other bytes under the stored version, or an older version, need `force=true`.
    let mut rebuilt = HOSTILE_WASM.to_vec();
    rebuilt.extend_from_slice(&[0x00, 0x06, 0x05, b'n', b'o', b't', b'e', b'!']);
    let (status, body) = upload(&app, &admin.token, HOSTILE_MANIFEST, &rebuilt, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("force"), "{body}");
    let older = HOSTILE_MANIFEST.replace("version = \"0.1.0\"", "version = \"0.0.9\"");
    assert_ne!(older, HOSTILE_MANIFEST, "the test manifest changed");
    let (status, body) = upload(&app, &admin.token, &older, HOSTILE_WASM, None).await;
    assert_eq!(status, 409, "{body}");
    let forced = reqwest::multipart::Form::new()
        .text("manifest", HOSTILE_MANIFEST.to_owned())
        .part(
            "wasm",
            reqwest::multipart::Part::bytes(rebuilt).file_name("plugin.wasm"),
        )
        .text("force", "true");
    let r = app.multipart("/api/plugins", &admin.token, forced).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (status, body) = upload(&app, &admin.token, HOSTILE_MANIFEST, HOSTILE_WASM, None).await;
    assert_eq!(
        status, 409,
        "the forced bytes are now the stored ones: {body}"
    );
    let forced_back = reqwest::multipart::Form::new()
        .text("manifest", HOSTILE_MANIFEST.to_owned())
        .part(
            "wasm",
            reqwest::multipart::Part::bytes(HOSTILE_WASM.to_vec()).file_name("plugin.wasm"),
        )
        .text("force", "true");
    let r = app
        .multipart("/api/plugins", &admin.token, forced_back)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app
        .post("/api/integrations/hostile/install", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["installation"]["http_hosts"],
        json!(["api.example.com"])
    );

    let test = |text: &'static str| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            let r = app
                .post(
                    "/api/integrations/hostile/test",
                    &token,
                    json!({"text": text}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.body
        }
    };
    let ok = test("hello").await;
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(ok["output"]["tags"][0]["name"], "hello");

    for (input, expected) in [
        ("loop", "deadline"),
        ("memory", "memory limit"),
        ("trap", "trapped"),
        (
            "http https://evil.example.net/steal",
            "not one this plugin declared",
        ),
    ] {
        let r = test(input).await;
        assert_eq!(r["status"], "error", "{input}: {r}");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains(expected), "{input}: {error}");
        // What it logged before it failed is kept for its author, with what it wrote to
        // stderr (the panic's message).
        let command = input.split_whitespace().next().unwrap_or_default();
        let logs = r["logs"].as_array().unwrap();
        assert_eq!(logs[0], format!("info: asked to {command}"), "{r}");
        let stderr: Vec<&str> = logs[1..].iter().map(|l| l.as_str().unwrap()).collect();
        assert!(stderr.iter().all(|l| l.starts_with("stderr: ")), "{r}");
        if command == "trap" {
            assert!(stderr.iter().any(|l| l.contains("asked to trap")), "{r}");
        }
        // The host keeps serving, and the plugin still works on the next call.
        assert_eq!(app.get("/healthz", &admin.token).await.status, 200);
        assert_eq!(test("again").await["status"], "ok");
    }
    // The key-value store persists across calls.
    assert_eq!(test("kv").await["output"]["tags"][0]["name"], "count 1");
    assert_eq!(test("kv").await["output"]["tags"][0]["name"], "count 2");
    // Within a quota: 4 MiB of values (1,000 keys) per installation; what is kept stays.
    let full = test("kv-fill").await;
    let refusal = full["output"]["tags"][0]["name"].as_str().unwrap();
    assert!(
        refusal.starts_with("stored 63: the store is full"),
        "{refusal}"
    );
    assert_eq!(test("kv").await["output"]["tags"][0]["name"], "count 3");
    // A call's log is bounded: 100 lines, then a count of what was left out.
    let flood = test("log-flood").await;
    let lines = flood["logs"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 101, "{flood}");
    assert_eq!(lines[1], "debug: line 0");
    assert_eq!(lines[100], "… 401 more lines were not kept");

    let log = app
        .get("/api/plugins/hostile/invocations?limit=50", &admin.token)
        .await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    // The invocation log keeps each call's log lines and output.
    let last = &log.body["items"][1];
    assert_eq!(last["logs"], json!(["info: asked to kv"]), "{last}");
    assert_eq!(last["output"]["tags"][0]["name"], "count 3", "{last}");
    let trapped = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["error"].as_str().is_some_and(|e| e.contains("trapped")))
        .expect("the trap is in the log");
    assert_eq!(trapped["logs"][0], "info: asked to trap");
    assert!(
        trapped["logs"][1].as_str().unwrap().starts_with("stderr: "),
        "{trapped}"
    );
    assert!(trapped["output"].is_null());
    // What a plugin prints is in its log too.
    let printed = test("print").await;
    assert_eq!(
        printed["logs"],
        json!([
            "info: asked to print",
            "stdout: to stdout",
            "stderr: to stderr"
        ]),
        "{printed}"
    );
    // A dry run reads the installation's store and keeps its writes to itself.
    let dry = |text: &'static str| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            app.post(
                "/api/integrations/hostile/test",
                &token,
                json!({"text": text, "dry_run": true}),
            )
            .await
            .body
        }
    };
    assert_eq!(dry("kv").await["output"]["tags"][0]["name"], "count 4");
    assert_eq!(dry("kv").await["output"]["tags"][0]["name"], "count 4");
    assert_eq!(test("kv").await["output"]["tags"][0]["name"], "count 4");
    // A dry run reports the events the plugin emits and does not act on them.
    let agent = app.agent(&admin, json!({})).await;
    let session = app.create_session(&admin, &agent).await;
    let priority = || async {
        app.get(&format!("/api/chat/sessions/{session}"), &admin.token)
            .await
            .body["priority"]
            .clone()
    };
    let emitting = format!("priority {session}");
    let r = app
        .post(
            "/api/integrations/hostile/test",
            &admin.token,
            json!({"text": emitting, "dry_run": true}),
        )
        .await;
    assert_eq!(r.body["events"][0]["kind"], "chat.priority", "{:?}", r.body);
    assert_eq!(priority().await, "normal");
    let r = app
        .post(
            "/api/integrations/hostile/test",
            &admin.token,
            json!({"text": emitting}),
        )
        .await;
    assert_eq!(r.body["events"][0]["kind"], "chat.priority", "{:?}", r.body);
    assert_eq!(priority().await, "urgent");
    let errors = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "error")
        .count();
    assert_eq!(errors, 4);
    let r = app
        .get("/api/plugins/hostile/invocations", &user.token)
        .await;
    assert_problem(&r, 403);

    // An upgrade runs only once the workspace admin approves it.
    let upgraded = HOSTILE_MANIFEST.replace("\nversion = \"0.1.0\"", "\nversion = \"0.2.0\"");
    let mut changed = HOSTILE_WASM.to_vec();
    changed.extend_from_slice(&[0, 5, 4, b'n', b'o', b'v', b'a']); // a custom section: a new digest
    let (status, body) = upload(&app, &admin.token, &upgraded, &changed, None).await;
    assert_eq!(status, 201, "{body}");
    let refused = test("hello").await;
    assert!(
        refused["error"].as_str().unwrap().contains("approve"),
        "{refused}"
    );
    let r = app
        .put(
            "/api/integrations/hostile/install",
            &admin.token,
            json!({"approve": true}),
        )
        .await;
    assert_eq!(r.body["installation"]["approved"], true, "{:?}", r.body);
    assert_eq!(test("hello").await["status"], "ok");

    // Built-ins stay; uploaded plugins go, with their installations.
    let r = app
        .delete("/api/plugins/keyword-tagger", &admin.token)
        .await;
    assert_problem(&r, 409);
    let r = app.delete("/api/plugins/hostile", &user.token).await;
    assert_problem(&r, 403);
    let r = app.delete("/api/plugins/hostile", &admin.token).await;
    assert_eq!(r.status, 204);
    let market = app.get("/api/integrations/marketplace", &admin.token).await;
    assert!(
        market.body["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != "hostile")
    );
    app.finish().await;
}
on_both!(hostile_plugins_fail_alone);

async fn analytics_exports_run_exporter_plugins(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let agent = app.project(&alice, json!({"name": "Support"})).await;
    let session = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"agent_id": agent["id"]}),
        )
        .await;
    let session_id = session.body["id"].as_str().unwrap();
    for text in ["Hello", "Where is my parcel?"] {
        let r = app
            .post(
                &format!("/api/chat/sessions/{session_id}/messages"),
                &alice.token,
                json!({"content": text}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    let r = app
        .post(
            "/api/analytics/export",
            &alice.token,
            json!({"format": "xlsx"}),
        )
        .await;
    assert_problem(&r, 422);
    let r = app
        .post(
            "/api/analytics/export",
            &alice.token,
            json!({"plugin_id": "keyword-tagger"}),
        )
        .await;
    assert_problem(&r, 422);

    let mut files = Vec::new();
    for format in ["csv", "json", "pdf"] {
        let r = app
            .post(
                "/api/analytics/export",
                &alice.token,
                json!({"format": format, "time_range": "7d", "title": "Weekly report"}),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        assert_eq!(r.body["plugin_id"], format!("{format}-exporter"));
        // `7d` is fixed when asked: the seven days up to today.
        let today = chrono::Utc::now().date_naive();
        assert_eq!(r.body["time_range"], "7d");
        assert_eq!(r.body["to"], today.to_string());
        assert_eq!(
            r.body["from"],
            (today - chrono::Duration::days(6)).to_string()
        );
        let id = r.body["id"].as_str().unwrap().to_owned();
        let done = app.export_done(&alice.token, &id).await;
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(done["progress"], 100);
        // Only its requester sees it.
        assert_problem(
            &app.get(&format!("/api/analytics/export/{id}"), &bob.token)
                .await,
            404,
        );
        files.push(
            app.download(&alice.token, done["download_url"].as_str().unwrap())
                .await,
        );
    }

    let (csv_type, csv) = &files[0];
    assert!(csv_type.starts_with("text/csv"));
    let csv = String::from_utf8(csv.clone()).unwrap();
    // Without `sections`, the report is its performance section: per agent, then per day.
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "Performance \u{2014} Per agent", "{csv}");
    assert!(
        lines[1].starts_with("Agent,Conversations,Messages,Replies,"),
        "{csv}"
    );
    assert!(lines[2].starts_with("Support,1,4,2,"), "{csv}");
    assert_eq!(lines[3], "");
    assert_eq!(lines[4], "Performance \u{2014} Per day");
    assert_eq!(
        lines.len(),
        13,
        "two titled tables, 1 agent and 7 days: {csv}"
    );
    let today = chrono::Utc::now().date_naive().to_string();
    let last: Vec<&str> = lines[12].split(',').collect();
    assert_eq!(last[..4], [today.as_str(), "1", "4", "2"], "{csv}");

    let (json_type, json_bytes) = &files[1];
    assert_eq!(json_type, "application/json");
    let report: Value = serde_json::from_slice(json_bytes).unwrap();
    assert_eq!(report["title"], "Weekly report");
    assert_eq!(report["time_range"], "7d");
    assert_eq!(report["summary"]["conversations"], 1);
    assert_eq!(report["summary"]["agent_replies"], 2);
    assert_eq!(report["rows"].as_array().unwrap().len(), 7);
    assert_eq!(report["rows"][6]["date"], today);

    let (pdf_type, pdf) = &files[2];
    assert_eq!(pdf_type, "application/pdf");
    let doc = lopdf::Document::load_mem(pdf).expect("a valid PDF");
    let text = doc.extract_text(&[1]).unwrap();
    for expected in [
        "Weekly report",
        "Performance",
        "Conversations per day",
        "Per agent",
        "Support",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    // The chart's bars are filled rectangles in the page's content.
    let content = String::from_utf8_lossy(&doc.get_page_content(doc.page_iter().next().unwrap()))
        .into_owned();
    // One bar: the one day of the seven with a conversation.
    assert_eq!(content.matches(" re\nf").count(), 1, "{content}");

    // A disabled exporter is refused.
    app.post(
        "/api/integrations/csv-exporter/install",
        &alice.token,
        json!({"config": {"delimiter": ";"}}),
    )
    .await;
    app.post(
        "/api/integrations/csv-exporter/disable",
        &alice.token,
        json!({}),
    )
    .await;
    let r = app
        .post(
            "/api/analytics/export",
            &alice.token,
            json!({"format": "csv"}),
        )
        .await;
    assert_problem(&r, 409);
    app.finish().await;
}
on_both!(analytics_exports_run_exporter_plugins);

/// A server that records the requests it gets and answers 200 (for outbound plugin HTTP).
/// HMAC-SHA256, hex: how Slack signs its requests.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

async fn integrations_actions_and_webhooks(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    // Integration: the CRM endpoint gets the notification with the (encrypted at rest) key.
    let (crm, seen) = recorder().await;
    let r = app
        .post(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{crm}/hooks/nova"), "api_key": "s3cret"}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["installation"]["secrets_set"], json!(["api_key"]));
    assert!(r.body["installation"]["config"].get("api_key").is_none());
    let r = app
        .post(
            "/api/integrations/http-crm/test",
            &alice.token,
            json!({"title": "Escalation", "text": "A customer is angry"}),
        )
        .await;
    assert_eq!(r.body["status"], "ok", "{:?}", r.body);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0["authorization"], "Bearer s3cret");
        let sent: Value = serde_json::from_str(&seen[0].1).unwrap();
        assert_eq!(sent["title"], "Escalation");
        assert_eq!(sent["text"], "A customer is angry");
    }
    // An admin may only approve hosts; `*` is not a host.
    let r = app
        .put(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": crm}, "http_hosts": ["*"]}),
        )
        .await;
    assert_problem(&r, 422);
    // A secret left out on PUT is kept.
    let r = app
        .put(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{crm}/v2")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(
        r.body["installation"]["secrets_set"],
        json!(["api_key"]),
        "{:?}",
        r.body
    );
    app.post("/api/integrations/http-crm/test", &alice.token, json!({}))
        .await;
    assert_eq!(seen.lock().unwrap()[1].0["authorization"], "Bearer s3cret");

    // Slack may only reach hooks.slack.com, whatever URL it is given.
    let r = app
        .post(
            "/api/integrations/slack/install",
            &alice.token,
            json!({"config": {"webhook_url": format!("{crm}/fake-slack")}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app
        .post("/api/integrations/slack/test", &alice.token, json!({}))
        .await;
    assert_eq!(r.body["status"], "error");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("not one this plugin declared"),
        "{:?}",
        r.body
    );
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Automation actions change the workspace's sessions through events the host applies.
    let agent = app.project(&alice, json!({"name": "Support"})).await;
    let session = app
        .post(
            "/api/chat/sessions",
            &alice.token,
            json!({"agent_id": agent["id"]}),
        )
        .await;
    let session_id = session.body["id"].as_str().unwrap().to_owned();
    for plugin in ["escalate-to-human", "update-priority", "send-notification"] {
        let r = app
            .post(
                &format!("/api/integrations/{plugin}/install"),
                &alice.token,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = app
        .post(
            "/api/integrations/escalate-to-human/test",
            &alice.token,
            json!({"params": {"session_id": session_id, "reason": "refund over $500"}}),
        )
        .await;
    assert_eq!(r.body["status"], "ok", "{:?}", r.body);
    assert_eq!(r.body["events"][0]["kind"], "chat.escalate");
    let r = app
        .post(
            "/api/integrations/update-priority/test",
            &alice.token,
            json!({"params": {"session_id": session_id, "priority": "urgent"}}),
        )
        .await;
    assert_eq!(r.body["status"], "ok", "{:?}", r.body);
    let s = app
        .get(&format!("/api/chat/sessions/{session_id}"), &alice.token)
        .await;
    assert_eq!(s.body["status"], "escalated");
    assert_eq!(s.body["priority"], "urgent");
    let r = app
        .post(
            "/api/integrations/update-priority/test",
            &alice.token,
            json!({"params": {"session_id": session_id, "priority": "asap"}}),
        )
        .await;
    assert_eq!(r.body["status"], "error");
    let r = app
        .post(
            "/api/integrations/send-notification/test",
            &alice.token,
            json!({"params": {"title": "Heads up", "message": "Queue is long"}}),
        )
        .await;
    assert_eq!(r.body["status"], "ok", "{:?}", r.body);
    // A session of another workspace is out of the plugin's reach.
    let bobs_agent = app.project(&bob, json!({"name": "Bob's"})).await;
    let bobs = app
        .post(
            "/api/chat/sessions",
            &bob.token,
            json!({"agent_id": bobs_agent["id"]}),
        )
        .await;
    let r = app
        .post(
            "/api/integrations/escalate-to-human/test",
            &alice.token,
            json!({"params": {"session_id": bobs.body["id"]}}),
        )
        .await;
    assert_eq!(r.body["status"], "error");
    assert!(
        r.body["error"].as_str().unwrap().contains("refused"),
        "{:?}",
        r.body
    );
    let s = app
        .get(
            &format!("/api/chat/sessions/{}", bobs.body["id"].as_str().unwrap()),
            &bob.token,
        )
        .await;
    assert_eq!(s.body["status"], "active");

    // Webhook handler: a signed Slack slash command is accepted, an unsigned one is not.
    let r = app
        .post(
            "/api/integrations/slack-commands/install",
            &alice.token,
            json!({"config": {"signing_secret": "8f742231b10e"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let hook = r.body["installation"]["webhook_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = "command=%2Fnova&text=checkout+is+down&user_name=carol";
    let now = chrono::Utc::now().timestamp();
    let sign = |timestamp: i64| {
        format!(
            "v0={}",
            hmac_sha256_hex(b"8f742231b10e", format!("v0:{timestamp}:{body}").as_bytes())
        )
    };
    let client = reqwest::Client::new();
    let send_at = |timestamp: i64, signature: String| {
        client
            .post(format!("{}{hook}", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
    };
    let signature = sign(now);
    let send = |signature: String| send_at(now, signature);
    let res = send(signature.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["text"], "Sent to your Nova workspace.");
    let res = send("v0=00".into()).await.unwrap();
    assert_eq!(res.status(), 401);
    // A correctly signed request from ten minutes ago is a replay.
    let res = send_at(now - 600, sign(now - 600)).await.unwrap();
    assert_eq!(res.status(), 401);
    let unknown = hook.replace("slack-commands", "slack");
    let res = client
        .post(format!("{}{unknown}", app.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.post(
        "/api/integrations/slack-commands/disable",
        &alice.token,
        json!({}),
    )
    .await;
    assert_eq!(send(signature).await.unwrap().status(), 404);
    app.finish().await;
}
on_both!(integrations_actions_and_webhooks);

const EXTISM_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testing_extism_tagger.wasm"));
const EXTISM_MANIFEST: &str = include_str!(concat!(env!("OUT_DIR"), "/testing_extism_tagger.toml"));

async fn extism_plugins_run_beside_components(app: TestApp) {
    let admin = app.register("admin").await;
    // Extism plugins get `log` and `config` only.
    let greedy = EXTISM_MANIFEST.replace(
        "capabilities = [\"config\"]",
        "capabilities = [\"config\", \"http\"]",
    );
    let (status, body) = upload(&app, &admin.token, &greedy, EXTISM_WASM, None).await;
    assert_eq!(status, 422, "{body}");
    // A component is not an Extism plugin.
    let (status, body) = upload(&app, &admin.token, EXTISM_MANIFEST, HOSTILE_WASM, None).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = upload(&app, &admin.token, EXTISM_MANIFEST, EXTISM_WASM, None).await;
    assert_eq!(status, 201, "{body}");

    for (plugin, config) in [
        ("extism-tagger", json!({"category": "support"})),
        ("keyword-tagger", json!({})),
    ] {
        let r = app
            .post(
                &format!("/api/integrations/{plugin}/install"),
                &admin.token,
                json!({"config": config}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = app
        .post(
            "/api/knowledge/auto-tag",
            &admin.token,
            json!({"text": "Refund policy for Acme orders: the refund policy covers Acme."}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let runs: Vec<&str> = r.body["taggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["ok", "ok"], "{:?}", r.body);
    let acme = r.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .expect("the Extism tag");
    assert_eq!(acme["plugins"], json!(["extism-tagger"]));
    let categories: Vec<&str> = r.body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        categories.contains(&"support") && categories.contains(&"billing"),
        "{categories:?}"
    );

    // Its deadline holds as well.
    let r = app
        .post(
            "/api/integrations/extism-tagger/test",
            &admin.token,
            json!({"text": "loop"}),
        )
        .await;
    assert_eq!(r.body["status"], "error", "{:?}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("deadline"),
        "{:?}",
        r.body
    );
    let r = app
        .post(
            "/api/integrations/extism-tagger/test",
            &admin.token,
            json!({"text": "Hello World"}),
        )
        .await;
    assert_eq!(r.body["output"]["tags"][0]["name"], "hello", "{:?}", r.body);
    app.finish().await;
}
on_both!(extism_plugins_run_beside_components);

async fn an_upload_asking_for_more_capabilities_waits_for_approval(app: TestApp) {
    let admin = app.register("admin").await;
    let (status, body) = upload(&app, &admin.token, HOSTILE_MANIFEST, HOSTILE_WASM, None).await;
    assert_eq!(status, 201, "{body}");
    let r = app
        .post("/api/integrations/hostile/install", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let call = |text: &'static str| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            app.post(
                "/api/integrations/hostile/test",
                &token,
                json!({"text": text}),
            )
            .await
            .body
        }
    };
    assert_eq!(call("kv").await["status"], "ok");
    // A test call's body is checked like any other: a misspelt field is refused by name.
    let typo = app
        .post(
            "/api/integrations/hostile/test",
            &admin.token,
            json!({"txt": "kv"}),
        )
        .await;
    assert_problem(&typo, 422);
    // The same bytes again, now asking for `config` too: the digest is unchanged, the grant
    // is not.
    let wider = HOSTILE_MANIFEST.replace(
        r#"capabilities = ["log", "http", "kv", "events"]"#,
        r#"capabilities = ["log", "http", "kv", "events", "config"]"#,
    );
    assert_ne!(wider, HOSTILE_MANIFEST, "the test manifest changed");
    let (status, body) = upload(&app, &admin.token, &wider, HOSTILE_WASM, None).await;
    assert_eq!(status, 201, "{body}");
    // The answer shows the plugin as it stands in the uploader's own workspace.
    assert_eq!(body["installation_state"], "enabled", "{body}");
    assert_eq!(body["installation"]["approved"], false, "{body}");
    let market = app
        .get(
            "/api/integrations/marketplace?kind=auto-tagger",
            &admin.token,
        )
        .await;
    assert_eq!(
        listed(&market.body, "hostile")["installation"]["approved"],
        false
    );
    let waiting = call("kv").await;
    assert_eq!(waiting["status"], "error", "{waiting}");
    assert!(
        waiting["error"].as_str().unwrap().contains("approve"),
        "{waiting}"
    );
    let r = app
        .put(
            "/api/integrations/hostile/install",
            &admin.token,
            json!({"approve": true}),
        )
        .await;
    assert_eq!(r.body["installation"]["approved"], true, "{:?}", r.body);
    let granted = call("kv").await;
    assert_eq!(granted["status"], "ok", "{granted}");
}
on_both!(an_upload_asking_for_more_capabilities_waits_for_approval);

async fn uploads_and_exports_a_user_starts_are_rate_limited(app: TestApp) {
    let alice = app.register("alice").await;
    for _ in 0..2 {
        let r = app
            .post(
                "/api/analytics/export",
                &alice.token,
                json!({"format": "json"}),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let r = app
        .post(
            "/api/analytics/export",
            &alice.token,
            json!({"format": "json"}),
        )
        .await;
    assert_problem(&r, 429);
    assert!(r.headers.contains_key("retry-after"));
    // Uploads draw on the same allowance; another user has their own.
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(b"A note.".to_vec()).file_name("note.txt"),
    );
    let r = app
        .multipart("/api/knowledge/upload/bulk", &alice.token, form)
        .await;
    assert_problem(&r, 429);
    let bob = app.register("bob").await;
    let r = app
        .post(
            "/api/analytics/export",
            &bob.token,
            json!({"format": "json"}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
}
on_both!(
    uploads_and_exports_a_user_starts_are_rate_limited,
    |c: &mut nova_host::Config| {
        c.job_rate_limit_per_minute = 2;
    }
);

/// The example plugins written in Python (componentize-py) and JavaScript (componentize-js),
/// built by `.ci/run` into the files `NOVA_TEST_PYTHON_PLUGIN` and `NOVA_TEST_JS_PLUGIN` name:
/// each uploads, installs with its settings, tags, logs, and reports its own error.
async fn python_and_javascript_plugins_run(app: TestApp) {
    let admin = app.register("admin").await;
    let examples = [
        (
            "NOVA_TEST_PYTHON_PLUGIN",
            "python-tagger",
            include_str!("../../examples/python-tagger/nova-plugin.toml"),
        ),
        (
            "NOVA_TEST_JS_PLUGIN",
            "js-tagger",
            include_str!("../../examples/js-tagger/nova-plugin.toml"),
        ),
    ];
    for (variable, id, manifest) in examples {
        let Some(path) = std::env::var_os(variable) else {
            eprintln!("{variable} is not set to a built component: the {id} example is not run");
            continue;
        };
        let wasm = std::fs::read(&path).expect("the built component named by the variable");
        let (status, body) = upload(&app, &admin.token, manifest, &wasm, None).await;
        assert_eq!(status, 201, "{id}: {body}");
        let r = app
            .post(
                &format!("/api/integrations/{id}/install"),
                &admin.token,
                json!({"config": {"tags": 2}}),
            )
            .await;
        assert_eq!(r.status, 201, "{id}: {:?}", r.body);
        let test = |text: &'static str| {
            let app = &app;
            let token = admin.token.clone();
            async move {
                let r = app
                    .post(
                        &format!("/api/integrations/{id}/test"),
                        &token,
                        json!({"title": "Refunds", "text": text}),
                    )
                    .await;
                assert_eq!(r.status, 200, "{id}: {:?}", r.body);
                r.body
            }
        };
        let tagged = test("Customers may request refunds within thirty days").await;
        assert_eq!(tagged["status"], "ok", "{id}: {tagged}");
        assert_eq!(
            tagged["output"]["tags"],
            json!([{"name": "customers", "confidence": 0.5}, {"name": "refunds", "confidence": 0.5}]),
            "{id}: the two longest words, as configured"
        );
        let line = tagged["logs"][0].as_str().unwrap();
        assert!(
            line.starts_with("info: tagging") && line.ends_with("7 distinct words"),
            "{id}: {line}"
        );
        let empty = test("  ").await;
        assert_eq!(empty["status"], "error", "{id}: {empty}");
        assert!(
            empty["error"]
                .as_str()
                .unwrap()
                .contains("there is no text to tag"),
            "{id}: {empty}"
        );
    }
    app.finish().await;
}
on_both!(python_and_javascript_plugins_run);
