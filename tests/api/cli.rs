//! The `nova` binary's commands, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, run_with};

fn nova(data_dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nova"))
        .args(args)
        .env_clear()
        .env("NOVA_DATA_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nova");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("nova output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_admin_then_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = nova(dir.path(), &["migrate"], "");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(dir.path().join("nova.db").exists());

    let out = nova(
        dir.path(),
        &[
            "create-admin",
            "--email",
            "Root@Example.com",
            "--password-stdin",
        ],
        "a long secret\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "created instance admin root@example.com"
    );
    let again = nova(
        dir.path(),
        &[
            "create-admin",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        "a newer secret\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "promoted instance admin root@example.com"
    );
    let short = nova(
        dir.path(),
        &[
            "create-admin",
            "--email",
            "x@example.com",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!short.status.success());

    let url = format!("sqlite://{}", dir.path().join("nova.db").display());
    let data_dir = dir.path().to_path_buf();
    run_with(
        Backend::Sqlite,
        |c| c.database_url = Some(nova_host::config::Secret(url)),
        |app| async move {
            let old = app
                .call(
                    Method::POST,
                    "/api/auth/login",
                    None,
                    Some(json!({"email": "root@example.com", "password": "a long secret"})),
                )
                .await;
            assert_eq!(old.status, 401);
            let login = app
                .call(
                    Method::POST,
                    "/api/auth/login",
                    None,
                    Some(json!({"email": "root@example.com", "password": "a newer secret"})),
                )
                .await;
            assert_eq!(login.status, 200);
            assert_eq!(login.body["user"]["is_instance_admin"], true);
            // The next user to register is not an admin: the instance has one already.
            let next = app.register("someone").await;
            assert_eq!(
                app.get("/api/user/me", &next.token).await.body["is_instance_admin"],
                false
            );
            // Resetting the password with create-admin ends the sessions of the old one.
            let token = login.body["token"].as_str().unwrap().to_owned();
            assert_eq!(app.get("/api/user/me", &token).await.status, 200);
            let reset = tokio::task::spawn_blocking(move || {
                nova(
                    &data_dir,
                    &[
                        "create-admin",
                        "--email",
                        "root@example.com",
                        "--password-stdin",
                    ],
                    "a third secret\n",
                )
            })
            .await
            .unwrap();
            assert!(reset.status.success());
            assert_eq!(app.get("/api/user/me", &token).await.status, 401);
        },
    )
    .await;
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova"))
        .env_clear()
        .env("NOVA_DATA_DIR", dir.path())
        .env("NOVA_BIND", "not an address")
        .output()
        .expect("run nova");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOVA_BIND"));
}

/// `nova seed-demo` fills a workspace so that the dashboard lives at once.
async fn seed_demo_fills_the_dashboard(app: crate::helpers::TestApp) {
    let alice = app.register("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova"))
        .args(["seed-demo", "--email", "alice@example.com", "--days", "14"])
        .env_clear()
        .env("DATABASE_URL", &app.database_url)
        .env("NOVA_DATA_DIR", dir.path())
        .output()
        .expect("run nova");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = app.replica(|_| {}).await;
    let dash = fresh
        .get("/api/dashboard/analytics?time_range=30d", &alice.token)
        .await;
    assert_eq!(dash.body["metrics"]["total_agents"], 5);
    let days_with_messages = dash.body["trends"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["count"].as_i64().unwrap() > 0)
        .count();
    assert!(
        days_with_messages >= 10,
        "{days_with_messages} days with messages"
    );
    assert!(
        dash.body["metrics"]["user_satisfaction"]
            .as_f64()
            .is_some_and(|s| (1.0..=5.0).contains(&s))
    );
    assert!(
        dash.body["metrics"]["top_performing_agent"]["success_rate"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    let conv = fresh
        .get("/api/analytics/conversations?time_range=30d", &alice.token)
        .await;
    assert!(!conv.body["topics"].as_array().unwrap().is_empty());
    assert!(
        !conv.body["intent_recognition"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    fresh.finish().await;
}
crate::on_both!(seed_demo_fills_the_dashboard);
