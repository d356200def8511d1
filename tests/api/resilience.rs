//! Redis failing under running hosts: the host starts without it, keeps serving every
//! endpoint while it is down or stalled, and shares events across replicas again once it is
//! back — all against a real redis-server process of the test's own.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, run_with};
use crate::realtime::{messages, streamed_session, ticket_url, until_seq};

/// A redis-server of this test's own, on a port it picked.
struct OwnRedis {
    port: u16,
    process: Option<std::process::Child>,
}

impl OwnRedis {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let process = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("running").id();
        let _ = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every endpoint of the outage list answers, each within `limit`.
async fn serves_within(app: &TestApp, token: &str, project_id: &str, limit: Duration) {
    let started = Instant::now();
    let dashboard = app.get("/api/dashboard/analytics", token).await;
    assert_eq!(dashboard.status, 200, "{:?}", dashboard.body);
    let bulk = app
        .post(
            "/api/projects/bulk",
            token,
            json!({"action": "update_settings", "project_ids": [project_id], "settings": {"tone": "calm"}}),
        )
        .await;
    assert_eq!(bulk.status, 200, "{:?}", bulk.body);
    let me = app.get("/api/user/me", token).await;
    assert_eq!(me.status, 200);
    let ready = app.get("/readyz", token).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert!(
        started.elapsed() < limit,
        "answered in {:?}",
        started.elapsed()
    );
}

async fn redis_state(app: &TestApp) -> String {
    let ready = app.get("/readyz", "").await;
    ready.body["redis"].as_str().unwrap_or_default().to_owned()
}

async fn until_redis_state(app: &TestApp, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = redis_state(app).await;
        if now.starts_with(state) {
            return;
        }
        assert!(Instant::now() < deadline, "readyz still says redis {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_survive_redis_down_stalled_and_restarted() {
    // This test runs its own redis-server; it needs the same as the other Redis tests.
    let Some((_, backend)) = crate::helpers::redis_and_backend("Redis outage") else {
        return;
    };
    let mut redis = OwnRedis {
        port: OwnRedis::free_port(),
        process: None,
    };
    let url = redis.url();
    let url_for_a = url.clone();
    // A starts while Redis is down.
    run_with(
        backend,
        move |c| c.redis_url = Some(nova_host::config::Secret(url_for_a)),
        |a: TestApp| async move {
            let alice = a.register("alice").await;
            assert!(redis_state(&a).await.starts_with("unavailable"));
            let (agent_id, session) = streamed_session(&a, &alice).await;
            serves_within(&a, &alice.token, &agent_id, Duration::from_secs(5)).await;

            redis.start().await;
            until_redis_state(&a, "ok").await;
            let b = a
                .replica(|c| c.redis_url = Some(nova_host::config::Secret(url.clone())))
                .await;
            until_redis_state(&b, "ok").await;
            // Across replicas: the socket is on B, the message posted to A.
            let mut on_b =
                crate::helpers::connect(&ticket_url(&b, &alice.token, Some(&session)).await)
                    .await
                    .expect("socket on B");
            let mut on_a =
                crate::helpers::connect(&ticket_url(&a, &alice.token, Some(&session)).await)
                    .await
                    .expect("socket on A");
            post(&a, &alice, &session, "one").await;
            assert_eq!(messages(&until_seq(&mut on_b, 2).await).len(), 2);
            until_seq(&mut on_a, 2).await;

            // Stalled: Redis takes connections but never answers.
            redis.signal("-STOP");
            serves_within(&a, &alice.token, &agent_id, Duration::from_secs(5)).await;
            redis.signal("-CONT");

            // Down: every endpoint still answers, and a message reaches the sockets of the
            // host it was posted to.
            redis.kill();
            serves_within(&a, &alice.token, &agent_id, Duration::from_secs(5)).await;
            let login = a.login(&alice).await;
            assert_eq!(login.status, 200, "{:?}", login.body);
            post(&a, &alice, &session, "two").await;
            assert_eq!(messages(&until_seq(&mut on_a, 4).await).len(), 2);
            assert!(redis_state(&a).await.starts_with("unavailable"));

            // Back: cross-replica delivery resumes without a restart (the socket on B then
            // catches up on what it missed, in order).
            redis.start().await;
            until_redis_state(&a, "ok").await;
            until_redis_state(&b, "ok").await;
            post(&a, &alice, &session, "three").await;
            let seen = messages(&until_seq(&mut on_b, 6).await);
            assert_eq!(
                seen.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
                [3, 4, 5, 6]
            );
            serves_within(&a, &alice.token, &agent_id, Duration::from_secs(5)).await;
            b.finish().await;
        },
    )
    .await;
}

async fn post(app: &TestApp, user: &crate::helpers::User, session: &str, content: &str) {
    let r = app.post_message(user, session, content).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}
