//! The outbound guard: with `NOVA_ALLOW_PRIVATE_URLS` unset, nothing the server fetches for a
//! user or a plugin reaches an internal address, whether written as an address or as a name
//! that resolves to one; no redirect is followed; a stored key follows its destination.

use serde_json::json;

use crate::helpers::{TestApp, assert_problem, recorder};
use crate::on_both;

fn strict(config: &mut nova_host::Config) {
    config.allow_private_urls = nova_host::config::AllowPrivate::default();
}

/// The port of a local base URL such as `http://127.0.0.1:4321`.
fn port_of(base: &str) -> &str {
    base.rsplit(':').next().expect("a port")
}

async fn internal_addresses_are_refused_without_the_allowance(app: TestApp) {
    let (local, seen) = recorder().await;
    let by_name = format!("http://localhost:{}", port_of(&local));
    let alice = app.register("alice").await;
    let agent = app.agent(&alice, json!({})).await;
    let provider = format!("/api/projects/{agent}/provider");

    // An internal address is refused when saved, in every spelling of it.
    for url in [
        format!("{local}/v1"),
        format!("http://[::1]:{}/v1", port_of(&local)),
        format!("http://0x7f.1:{}/v1", port_of(&local)),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let r = app
            .put(
                &provider,
                &alice.token,
                json!({"base_url": url, "model": "m"}),
            )
            .await;
        assert_problem(&r, 422);
        assert!(
            r.body["detail"].as_str().unwrap().contains("internal"),
            "{url}: {:?}",
            r.body
        );
    }
    // A name that resolves to one is refused when it is fetched.
    let r = app
        .put(
            &provider,
            &alice.token,
            json!({"base_url": format!("{by_name}/v1"), "model": "m", "api_key": "k"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let session = app.create_session(&alice, &agent).await;
    let sent = app.post_message(&alice, &session, "hello").await;
    assert_eq!(sent.status, 502, "{:?}", sent.body);
    assert!(
        sent.body["detail"].as_str().unwrap().contains("internal"),
        "{:?}",
        sent.body
    );

    // A plugin's `http`, even to a host its installation lists.
    let install = "/api/integrations/http-crm/install";
    for (endpoint, host, first) in [
        (format!("{local}/hooks"), "127.0.0.1", true),
        (format!("{by_name}/hooks"), "localhost", false),
    ] {
        let body =
            json!({"config": {"endpoint": endpoint, "api_key": "s3cret"}, "http_hosts": [host]});
        let r = if first {
            app.post(install, &alice.token, body).await
        } else {
            app.put(install, &alice.token, body).await
        };
        assert!(r.status < 300, "{:?}", r.body);
        let tested = app
            .post("/api/integrations/http-crm/test", &alice.token, json!({}))
            .await;
        assert_eq!(tested.body["status"], "error", "{:?}", tested.body);
        assert!(
            tested.body["error"].as_str().unwrap().contains("internal"),
            "{:?}",
            tested.body
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "an internal request went out"
    );
}
on_both!(
    internal_addresses_are_refused_without_the_allowance,
    super::strict
);

/// A server that answers every request with a redirect to `target`.
async fn redirector(target: String) -> String {
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            (
                axum::http::StatusCode::FOUND,
                [("location", format!("{target}/stolen"))],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://127.0.0.1:{}", addr.port())
}

async fn redirects_are_not_followed(app: TestApp) {
    let (target, seen) = recorder().await;
    let hop = redirector(target).await;
    let alice = app.register("alice").await;
    let agent = app.agent(&alice, json!({})).await;
    let r = app
        .put(
            &format!("/api/projects/{agent}/provider"),
            &alice.token,
            json!({"base_url": format!("{hop}/v1"), "model": "m", "stream": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let session = app.create_session(&alice, &agent).await;
    let sent = app.post_message(&alice, &session, "hello").await;
    assert_eq!(sent.status, 502, "{:?}", sent.body);
    assert!(
        sent.body["detail"].as_str().unwrap().contains("302"),
        "{:?}",
        sent.body
    );
    let r = app
        .post(
            "/api/integrations/http-crm/install",
            &alice.token,
            json!({"config": {"endpoint": format!("{hop}/hooks")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    app.post("/api/integrations/http-crm/test", &alice.token, json!({}))
        .await;
    assert!(seen.lock().unwrap().is_empty(), "a redirect was followed");
}
on_both!(redirects_are_not_followed);

async fn a_stored_key_is_dropped_when_the_provider_moves(app: TestApp) {
    let alice = app.register("alice").await;
    let agent = app.agent(&alice, json!({})).await;
    let provider = format!("/api/projects/{agent}/provider");
    let set = |url: &str, key: Option<&str>| {
        let mut body = json!({"base_url": url, "model": "m"});
        if let Some(key) = key {
            body["api_key"] = json!(key);
        }
        body
    };
    for (url, key, kept, why) in [
        (
            "https://models.example.com/v1",
            Some("k"),
            true,
            "a key given is stored",
        ),
        (
            "https://models.example.com/v1",
            None,
            true,
            "same destination: kept",
        ),
        (
            "https://collector.example.net/v1",
            None,
            false,
            "another destination: dropped, so it cannot be sent there",
        ),
    ] {
        let r = app.put(&provider, &alice.token, set(url, key)).await;
        assert_eq!(r.status, 200, "{why}: {:?}", r.body);
        assert_eq!(r.body["has_api_key"], kept, "{why}: {:?}", r.body);
    }
}
on_both!(a_stored_key_is_dropped_when_the_provider_moves);

async fn an_installations_secrets_are_dropped_when_its_destination_changes(app: TestApp) {
    let (crm, seen) = recorder().await;
    let (elsewhere, seen_elsewhere) = recorder().await;
    let alice = app.register("alice").await;
    let install = "/api/integrations/http-crm/install";
    let secrets_after = |r: &crate::helpers::Resp| r.body["installation"]["secrets_set"].clone();
    let r = app
        .post(
            install,
            &alice.token,
            json!({"config": {"endpoint": format!("{crm}/hooks"), "api_key": "s3cret"}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(secrets_after(&r), json!(["api_key"]), "{:?}", r.body);
    // Another path at the same origin, same hosts: the key stays.
    let r = app
        .put(
            install,
            &alice.token,
            json!({"config": {"endpoint": format!("{crm}/v2")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(secrets_after(&r), json!(["api_key"]), "{:?}", r.body);
    // Another origin: the key is dropped, and the next call sends none.
    let r = app
        .put(
            install,
            &alice.token,
            json!({"config": {"endpoint": format!("{elsewhere}/collect")}, "http_hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(secrets_after(&r), json!([]), "{:?}", r.body);
    app.post("/api/integrations/http-crm/test", &alice.token, json!({}))
        .await;
    let received = seen_elsewhere.lock().unwrap();
    assert_eq!(received.len(), 1);
    assert!(received[0].0.get("authorization").is_none());
    assert!(seen.lock().unwrap().is_empty());
}
on_both!(an_installations_secrets_are_dropped_when_its_destination_changes);
