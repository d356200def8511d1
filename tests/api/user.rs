use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem};
use crate::on_both;

async fn preferences(app: TestApp) {
    let alice = app.register("alice").await;
    let defaults = app.get("/api/user/preferences", &alice.token).await;
    assert_eq!(defaults.status, 200);
    assert_eq!(
        defaults.body,
        json!({"theme": "auto", "dashboard_layout": [], "notification_settings": {}, "default_view_mode": "grid"})
    );

    let layout = json!([{"widget": "messages", "x": 0, "y": 0}, {"widget": "satisfaction"}]);
    let saved = app
        .put("/api/user/preferences", &alice.token,
            json!({"theme": "dark", "dashboard_layout": layout, "notification_settings": {"email": false}}))
        .await;
    assert_eq!(saved.status, 200, "{:?}", saved.body);
    // A partial update keeps the rest.
    let partial = app
        .put(
            "/api/user/preferences",
            &alice.token,
            json!({"default_view_mode": "list"}),
        )
        .await;
    assert_eq!(partial.body["theme"], "dark");
    let read = app.get("/api/user/preferences", &alice.token).await;
    assert_eq!(read.body["dashboard_layout"], layout);
    assert_eq!(read.body["notification_settings"], json!({"email": false}));
    assert_eq!(read.body["default_view_mode"], "list");

    for bad in [
        json!({"theme": "purple"}),
        json!({"default_view_mode": "table"}),
        json!({"dashboard_layout": {"not": "an array"}}),
        json!({"notification_settings": [1, 2]}),
        json!({"unknown": 1}),
    ] {
        assert_problem(
            &app.put("/api/user/preferences", &alice.token, bad).await,
            422,
        );
    }
    // Nothing of the bad requests was saved.
    assert_eq!(
        app.get("/api/user/preferences", &alice.token).await.body,
        read.body
    );

    let bob = app.register("bob").await;
    assert_eq!(
        app.get("/api/user/preferences", &bob.token).await.body["theme"],
        "auto"
    );
}
on_both!(preferences);

async fn shortcuts(app: TestApp) {
    let alice = app.register("alice").await;
    let created = app
        .post("/api/shortcuts/custom", &alice.token,
            json!({"keys": "Shift+Ctrl+N", "action": "new_project", "description": "New agent", "parameters": {"template": "general-assistant"}}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["keys"], "ctrl+shift+n");
    let id = created.body["id"].as_str().unwrap().to_owned();

    assert_problem(
        &app.post(
            "/api/shortcuts/custom",
            &alice.token,
            json!({"keys": "ctrl+shift+n", "action": "x"}),
        )
        .await,
        409,
    );
    assert_problem(
        &app.post(
            "/api/shortcuts/custom",
            &alice.token,
            json!({"keys": "hyper+n", "action": "x"}),
        )
        .await,
        422,
    );
    assert_problem(
        &app.post(
            "/api/shortcuts/custom",
            &alice.token,
            json!({"keys": "k", "action": ""}),
        )
        .await,
        422,
    );

    for i in 0..4 {
        let r = app
            .post(
                "/api/shortcuts/custom",
                &alice.token,
                json!({"keys": format!("alt+{i}"), "action": "open_tab"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // Pages of two: 5 shortcuts in 3 pages, none twice.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/shortcuts/custom?limit=2&cursor={c}"),
            None => "/api/shortcuts/custom?limit=2".to_owned(),
        };
        let page = app.get(&path, &alice.token).await;
        assert_eq!(page.status, 200);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    let bob = app.register("bob").await;
    assert_problem(
        &app.delete(&format!("/api/shortcuts/custom/{id}"), &bob.token)
            .await,
        404,
    );
    assert_eq!(
        app.delete(&format!("/api/shortcuts/custom/{id}"), &alice.token)
            .await
            .status,
        204
    );
    let left = app.get("/api/shortcuts/custom", &alice.token).await;
    assert_eq!(left.body["items"].as_array().unwrap().len(), 4);
}
on_both!(shortcuts);

async fn a_password_change_ends_the_other_sessions(app: TestApp) {
    let alice = app.register("alice").await;
    let login = |password: &'static str| {
        let app = app.clone();
        async move {
            app.call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": "alice@example.com", "password": password})),
            )
            .await
        }
    };
    let other = login("correct horse battery").await;
    let other = other.body["token"].as_str().unwrap().to_owned();
    let key = app
        .post("/api/user/api-keys", &alice.token, json!({"name": "ci"}))
        .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let key = key.body["key"].as_str().unwrap().to_owned();

    let wrong = app
        .put(
            "/api/user/password",
            &alice.token,
            json!({"current_password": "not it at all", "new_password": "a brand new secret"}),
        )
        .await;
    assert_problem(&wrong, 403);
    let short = app
        .put(
            "/api/user/password",
            &alice.token,
            json!({"current_password": "correct horse battery", "new_password": "short"}),
        )
        .await;
    assert_problem(&short, 422);
    let changed = app
        .put(
            "/api/user/password",
            &alice.token,
            json!({"current_password": "correct horse battery", "new_password": "a brand new secret"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    assert_eq!(app.get("/api/user/me", &alice.token).await.status, 200);
    assert_eq!(app.get("/api/user/me", &other).await.status, 401);
    // API keys are credentials of their own, managed at /api/user/api-keys.
    assert_eq!(app.get("/api/user/me", &key).await.status, 200);
    assert_eq!(login("correct horse battery").await.status, 401);
    assert_eq!(login("a brand new secret").await.status, 200);
}
on_both!(a_password_change_ends_the_other_sessions);

async fn logout_all_ends_every_session(app: TestApp) {
    let alice = app.register("alice").await;
    let second = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "alice@example.com", "password": "correct horse battery"})),
        )
        .await;
    let second = second.body["token"].as_str().unwrap().to_owned();
    let r = app
        .post("/api/auth/logout-all", &alice.token, json!({}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(app.get("/api/user/me", &alice.token).await.status, 401);
    assert_eq!(app.get("/api/user/me", &second).await.status, 401);
}
on_both!(logout_all_ends_every_session);
