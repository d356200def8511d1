use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem};
use crate::on_both;

async fn registration_login_and_logout(app: TestApp) {
    let alice = app.register("alice").await;
    let me = app.get("/api/user/me", &alice.token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(
        me.body["is_instance_admin"], true,
        "the first user is an instance admin"
    );
    assert!(me.body.get("password_hash").is_none());

    let bob = app.register("bob").await;
    let me = app.get("/api/user/me", &bob.token).await;
    assert_eq!(me.body["is_instance_admin"], false);

    // The same email, in another case, is taken.
    let dup = app
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "ALICE@example.com", "password": "another password"})),
        )
        .await;
    assert_problem(&dup, 409);
    for (body, field) in [
        (
            json!({"email": "not-an-email", "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": "c@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "c@example.com", "password": "long enough", "name": "  "}),
            "name",
        ),
    ] {
        let r = app
            .call(Method::POST, "/api/auth/register", None, Some(body))
            .await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let missing = app
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_problem(&missing, 422);

    let wrong = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "alice@example.com", "password": "wrong password"})),
        )
        .await;
    assert_problem(&wrong, 401);
    let unknown = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "wrong password"})),
        )
        .await;
    assert_problem(&unknown, 401);

    let login = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "Alice@Example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(login.status, 200);
    let token = login.body["token"].as_str().unwrap().to_owned();
    assert_ne!(token, alice.token);
    assert_eq!(app.get("/api/user/me", &token).await.status, 200);

    let out = app
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, 204);
    assert_problem(&app.get("/api/user/me", &token).await, 401);
    // Other sessions stay valid.
    assert_eq!(app.get("/api/user/me", &alice.token).await.status, 200);

    let anonymous = app.call(Method::GET, "/api/user/me", None, None).await;
    assert_problem(&anonymous, 401);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    assert_problem(&app.get("/api/user/me", "nova_forged").await, 401);
}
on_both!(registration_login_and_logout);

async fn api_keys(app: TestApp) {
    let alice = app.register("alice").await;
    let created = app
        .post(
            "/api/user/api-keys",
            &alice.token,
            json!({"name": "ci script", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created.body["prefix"].as_str().unwrap()));
    assert!(created.body["expires_at"].is_string());

    // The key authenticates as its owner.
    let me = app.get("/api/user/me", &key).await;
    assert_eq!(me.body["id"], alice.id);

    let list = app.get("/api/user/api-keys", &alice.token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(
        list.body["items"][0].get("key").is_none(),
        "the key is shown once only"
    );
    assert!(list.body["next_cursor"].is_null());

    // Another user can neither see nor delete it.
    let bob = app.register("bob").await;
    assert_eq!(
        app.get("/api/user/api-keys", &bob.token).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_problem(
        &app.delete(&format!("/api/user/api-keys/{id}"), &bob.token)
            .await,
        404,
    );

    assert_problem(
        &app.post("/api/user/api-keys", &alice.token, json!({"name": ""}))
            .await,
        422,
    );
    assert_problem(
        &app.post(
            "/api/user/api-keys",
            &alice.token,
            json!({"name": "x", "expires_in_days": 0}),
        )
        .await,
        422,
    );

    assert_eq!(
        app.delete(&format!("/api/user/api-keys/{id}"), &alice.token)
            .await
            .status,
        204
    );
    assert_problem(&app.get("/api/user/me", &key).await, 401);
    assert_problem(
        &app.delete(&format!("/api/user/api-keys/{id}"), &alice.token)
            .await,
        404,
    );
}
on_both!(api_keys);

async fn the_bearer_scheme_is_case_insensitive(app: TestApp) {
    let alice = app.register("alice").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = app
            .client
            .get(format!("{}/api/user/me", app.base))
            .header("authorization", format!("{scheme} {}", alice.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
}
on_both!(the_bearer_scheme_is_case_insensitive);

async fn simultaneous_first_registrations_make_one_instance_admin(app: TestApp) {
    let registrations = (0..8).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let r = app
                .call(
                    Method::POST,
                    "/api/auth/register",
                    None,
                    Some(json!({"email": format!("user{i}@example.com"), "password": "correct horse battery"})),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            r.body["user"]["is_instance_admin"].as_bool().unwrap()
        })
    });
    let mut admins = 0;
    for r in registrations.collect::<Vec<_>>() {
        admins += usize::from(r.await.unwrap());
    }
    assert_eq!(admins, 1);
}
on_both!(simultaneous_first_registrations_make_one_instance_admin);

/// Logs in as `email` from the loopback address `from` (127.0.0.0/8 is all this machine).
async fn login_from(app: &TestApp, from: [u8; 4], email: &str, password: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .build()
        .unwrap();
    client
        .post(format!("{}/api/auth/login", app.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn password_guessing_is_throttled_by_account_and_address(app: TestApp) {
    app.register("alice").await;
    app.register("bob").await;
    // Against one account, from many addresses: six attempts a minute, the right password
    // included once the limit is reached.
    for last in 2..8 {
        let status = login_from(&app, [127, 0, 0, last], "alice@example.com", "wrong guess!").await;
        assert_eq!(status, 401);
    }
    let status = login_from(
        &app,
        [127, 0, 0, 8],
        "alice@example.com",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 429);
    // Another account is not affected...
    let status = login_from(
        &app,
        [127, 0, 0, 9],
        "bob@example.com",
        "correct horse battery",
    )
    .await;
    assert_eq!(status, 200);
    // ...but one address trying many accounts is.
    for n in 0..6 {
        let status = login_from(
            &app,
            [127, 0, 0, 10],
            &format!("nobody{n}@example.com"),
            "guess guess",
        )
        .await;
        assert_eq!(status, 401);
    }
    let own = app
        .client
        .post(format!("{}/api/auth/login", app.base))
        .json(&json!({"email": "bob@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    // The test's own client is 127.0.0.1, which registered two users: still under the limit.
    assert_eq!(own.status().as_u16(), 200);
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 10]))
        .build()
        .unwrap();
    let refused = client
        .post(format!("{}/api/auth/register", app.base))
        .json(&json!({"email": "newcomer@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(
        refused.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
}
on_both!(
    password_guessing_is_throttled_by_account_and_address,
    |c: &mut nova_host::Config| {
        c.auth_rate_limit_per_minute = 6;
    }
);
