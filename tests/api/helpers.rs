//! `spawn_app`: a host on port 0 with its own database (a temp SQLite file, or a fresh
//! PostgreSQL database when `NOVA_TEST_POSTGRES_URL` is set), and a small HTTP client.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Once};

use nova_host::{AppState, Config};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running host. Cloning shares it.
#[derive(Clone)]
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    /// The URL of this test's database, to start a second replica on it.
    pub database_url: String,
    inner: Arc<Guard>,
}

struct Guard {
    shutdown: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The status, headers and body (JSON when it parses, else a string) of a response.
    pub async fn read(res: reqwest::Response) -> Resp {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            body,
            headers,
        }
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The password every test user registers with.
pub const PASSWORD: &str = "correct horse battery";

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
    pub workspace_id: String,
}

fn postgres_admin_url() -> Option<String> {
    static NOTICE: Once = Once::new();
    let url = std::env::var("NOVA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        NOTICE.call_once(|| {
            // Written to the real stderr, past the test harness's capture, so it is seen.
            let _ = writeln!(
                std::io::stderr(),
                "note: NOVA_TEST_POSTGRES_URL is not set: the PostgreSQL variants of the API tests pass without running"
            );
        });
    }
    url
}

/// The Redis URL for tests that need one (saying so when `NOVA_TEST_REDIS_URL` is unset), and
/// the backend to run them on: PostgreSQL when configured, else SQLite.
pub fn redis_and_backend(test: &str) -> Option<(String, Backend)> {
    let Some(redis) = std::env::var("NOVA_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "note: NOVA_TEST_REDIS_URL is not set: the {test} test passes without running"
        );
        return None;
    };
    let backend = if std::env::var("NOVA_TEST_POSTGRES_URL").is_ok() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    Some((redis, backend))
}

/// Runs `scenario` against a fresh host on `backend`, then tears it down.
pub async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(backend, |_| {}, scenario).await
}

/// Like [`run`], with a chance to adjust the host's configuration.
pub async fn run_with<F, Fut>(backend: Backend, configure: impl FnOnce(&mut Config), scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(app) = spawn_app(backend, configure).await else {
        return;
    };
    scenario(app.clone()).await;
    app.finish().await;
}

/// What a host started with no configuration gets (programs found on PATH included), on
/// `database_url`, allowed to reach the tests' local mock servers.
fn base_config(database_url: &str, data_dir: &std::path::Path) -> Config {
    Config {
        database_url: Some(nova_host::config::Secret(database_url.to_owned())),
        data_dir: data_dir.to_path_buf(),
        allow_private_urls: nova_host::config::AllowPrivate {
            everything: true,
            ..Default::default()
        },
        // Every test user registers from 127.0.0.1; some tests chat a lot.
        auth_rate_limit_per_minute: 10_000,
        chat_rate_limit_per_minute: 10_000,
        job_rate_limit_per_minute: 10_000,
        ..Config::from_sources(None, &|_| None).expect("default configuration")
    }
}

pub async fn spawn_app(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg_database) = fresh_database(backend, dir.path()).await?;
    let mut config = base_config(&database_url, dir.path());
    configure(&mut config);
    let app = start(config, backend, database_url, dir, pg_database).await;
    Some(app)
}

/// A fresh, empty database on `backend` (`None` when PostgreSQL is not configured): its URL
/// and, on PostgreSQL, its name for [`drop_database`].
pub async fn fresh_database(
    backend: Backend,
    dir: &std::path::Path,
) -> Option<(String, Option<String>)> {
    match backend {
        Backend::Sqlite => Some((format!("sqlite://{}", dir.join("nova.db").display()), None)),
        Backend::Postgres => {
            let admin = postgres_admin_url()?;
            let name = format!("nova_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(&admin)
                .await
                .expect("connect to NOVA_TEST_POSTGRES_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let url = match admin.rsplit_once('/') {
                Some((server, _)) => format!("{server}/{name}"),
                None => panic!("NOVA_TEST_POSTGRES_URL must end with a database name"),
            };
            Some((url, Some(name)))
        }
    }
}

/// Drops a PostgreSQL database made by [`fresh_database`].
pub async fn drop_database(name: Option<String>) {
    if let (Some(name), Some(admin)) = (name, postgres_admin_url())
        && let Ok(mut conn) = PgConnection::connect(&admin).await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

async fn start(
    config: Config,
    backend: Backend,
    database_url: String,
    dir: tempfile::TempDir,
    pg_database: Option<String>,
) -> TestApp {
    let state = AppState::build(config).await.expect("build app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = nova_host::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
    });
    TestApp {
        base,
        client: reqwest::Client::new(),
        backend,
        database_url,
        inner: Arc::new(Guard {
            shutdown: std::sync::Mutex::new(Some(tx)),
            _dir: dir,
            pg_database,
        }),
    }
}

impl TestApp {
    /// A client of a host running elsewhere (a `nova` process started by [`start_nova`]).
    pub fn at(base: &str) -> TestApp {
        TestApp {
            base: base.to_owned(),
            client: reqwest::Client::new(),
            backend: Backend::Sqlite,
            database_url: String::new(),
            inner: Arc::new(Guard {
                shutdown: std::sync::Mutex::new(None),
                _dir: tempfile::tempdir().expect("temp dir"),
                pg_database: None,
            }),
        }
    }

    /// Another host ("replica") on the same database, configured by `configure`.
    pub async fn replica(&self, configure: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = base_config(&self.database_url, dir.path());
        // Replicas share the master key (NOVA_MASTER_KEY), or none could open the others'
        // secrets.
        config.master_key = self.master_key();
        configure(&mut config);
        start(config, self.backend, self.database_url.clone(), dir, None).await
    }

    /// The key the host made in its data dir.
    fn master_key(&self) -> Option<nova_host::config::Secret<[u8; 32]>> {
        use base64::Engine;
        let text = std::fs::read_to_string(self.inner._dir.path().join("master.key")).ok()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        Some(nova_host::config::Secret(bytes.try_into().ok()?))
    }

    /// Stops the host and drops its PostgreSQL database.
    pub async fn finish(self) {
        if let Some(tx) = self.inner.shutdown.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
        drop_database(self.inner.pg_database.clone()).await;
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        Resp::read(res).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Sends `body` with `If-Match: if_match`.
    pub async fn call_if_match(
        &self,
        method: Method,
        path: &str,
        token: &str,
        if_match: &str,
        body: Value,
    ) -> Resp {
        let res = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header("if-match", if_match)
            .json(&body)
            .send()
            .await
            .expect("request");
        Resp::read(res).await
    }

    /// Sends raw bytes with a content type, on a connection of its own: a server that
    /// refuses a body unread closes the connection, which must not break the next request.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let res = reqwest::Client::new()
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        Resp::read(res).await
    }

    /// Posts a multipart form, on a connection of its own (as [`TestApp::raw`]).
    pub async fn multipart(&self, path: &str, token: &str, form: reqwest::multipart::Form) -> Resp {
        let res = reqwest::Client::new()
            .post(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("request");
        Resp::read(res).await
    }

    pub async fn register(&self, name: &str) -> User {
        let email = format!("{name}@example.com");
        let r = self
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"email": email, "password": PASSWORD, "name": name})),
            )
            .await;
        assert_eq!(r.status, 201, "register {name}: {:?}", r.body);
        let token = r.body["token"].as_str().expect("token").to_owned();
        let me = self.get("/api/user/me", &token).await;
        User {
            id: r.body["user"]["id"].as_str().expect("id").to_owned(),
            email,
            token,
            workspace_id: me.body["personal_workspace_id"]
                .as_str()
                .expect("workspace")
                .to_owned(),
        }
    }

    /// Logs `user` in once more (a new session), with the password they registered with.
    pub async fn login(&self, user: &User) -> Resp {
        self.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": user.email, "password": PASSWORD})),
        )
        .await
    }

    /// Creates a project in `user`'s personal workspace.
    pub async fn project(&self, user: &User, body: Value) -> Value {
        let r = self.post("/api/projects", &user.token, body).await;
        assert_eq!(r.status, 201, "create project: {:?}", r.body);
        r.body
    }

    /// Creates an agent of `owner` with `settings` and returns its id.
    pub async fn agent(&self, owner: &User, settings: Value) -> String {
        let p = self
            .project(
                owner,
                json!({"name": "Helper", "settings": settings, "system_prompt": "Be brief."}),
            )
            .await;
        p["id"].as_str().expect("project id").to_owned()
    }

    /// Points `project_id`'s provider at the mock model `echo` (it answers "You said: …").
    pub async fn answer_with_echo(&self, owner: &User, project_id: &str) {
        let r = self
            .put(
                &format!("/api/projects/{project_id}/provider"),
                &owner.token,
                json!({"base_url": mock_ai(), "model": "echo", "stream": false}),
            )
            .await;
        assert_eq!(r.status, 200, "set the echo provider: {:?}", r.body);
    }

    /// Starts a chat session of `user` with `agent_id` and returns its id.
    pub async fn create_session(&self, user: &User, agent_id: &str) -> String {
        let r = self
            .post(
                "/api/chat/sessions",
                &user.token,
                json!({"agent_id": agent_id}),
            )
            .await;
        assert_eq!(r.status, 201, "create session: {:?}", r.body);
        r.body["id"].as_str().expect("session id").to_owned()
    }

    /// Posts `content` to a session as `user`: the answer holds `message` and `reply`.
    pub async fn post_message(&self, user: &User, session_id: &str, content: &str) -> Resp {
        self.post(
            &format!("/api/chat/sessions/{session_id}/messages"),
            &user.token,
            json!({"content": content}),
        )
        .await
    }

    /// Shares a project with `with` at `permission`.
    /// Waits (up to 10 s) for an export to finish; its final status.
    pub async fn export_done(&self, token: &str, id: &str) -> Value {
        for _ in 0..100 {
            let s = self
                .get(&format!("/api/analytics/export/{id}"), token)
                .await;
            assert_eq!(s.status, 200, "{:?}", s.body);
            if s.body["status"] == "done" || s.body["status"] == "failed" {
                return s.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("export {id} did not finish");
    }

    /// A file's content type and bytes.
    pub async fn download(&self, token: &str, url: &str) -> (String, Vec<u8>) {
        let res = reqwest::Client::new()
            .get(format!("{}{url}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        (content_type, res.bytes().await.unwrap().to_vec())
    }

    pub async fn share(&self, owner: &User, project_id: &str, with: &User, permission: &str) {
        let r = self
            .post(
                &format!("/api/projects/{project_id}/share"),
                &owner.token,
                json!({"user_email": with.email, "permission": permission}),
            )
            .await;
        assert!(r.status < 300, "share: {:?}", r.body);
    }
}

/// The string `field` of every item of the list `body[list]`.
pub fn column<'a>(body: &'a Value, list: &str, field: &str) -> Vec<&'a str> {
    body[list]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i[field].as_str()).collect())
        .unwrap_or_default()
}

/// Asserts a problem+json error with `status`.
#[track_caller]
pub fn assert_problem(r: &Resp, status: u16) {
    assert_eq!(
        r.status, status,
        "expected {status}, got {}: {:?}",
        r.status, r.body
    );
    assert!(
        r.content_type().starts_with("application/problem+json"),
        "content type {}",
        r.content_type()
    );
    assert_eq!(r.body["status"], status);
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

/// A small OpenAI-compatible server for the whole test binary, on its own thread. The model
/// name picks the behaviour: `echo` answers "You said: <last message>" (streamed word by word
/// when asked), `slow` waits 5 s, `fail` answers 500, `malformed` sends broken JSON (or a
/// broken stream). Audio: `/audio/transcriptions` answers a fixed transcript, `/audio/speech`
/// a tiny WAV.
pub fn mock_ai() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(format!("http://{}/v1", listener.local_addr().expect("addr")))
                    .expect("send url");
                let app = axum::Router::new()
                    .route("/v1/chat/completions", axum::routing::post(mock_completions))
                    .route(
                        "/v1/audio/transcriptions",
                        axum::routing::post(|| async {
                            axum::Json(json!({"text": " hello from the microphone ", "language": "en", "duration": 1.25}))
                        }),
                    )
                    .route(
                        "/v1/audio/speech",
                        axum::routing::post(|| async {
                            let mut wav = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
                            wav.extend([0u8; 32]);
                            ([("content-type", "audio/mpeg")], wav)
                        }),
                    );
                axum::serve(listener, app).await.expect("mock serve");
            });
        });
        rx.recv().expect("mock url")
    })
    .clone()
}

async fn mock_completions(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let answer = format!("You said: {last}");
    match model.as_str() {
        "slow" => {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
        "fail" => {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "model overloaded",
            )
                .into_response();
        }
        "malformed" if !stream => return "{not json".into_response(),
        "malformed" => {
            return ([("content-type", "text/event-stream")], "data: {broken\n\n").into_response();
        }
        _ => {}
    }
    if stream {
        let mut sse = String::new();
        for word in answer.split_inclusive(' ') {
            sse += &format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": word}}]})
            );
        }
        sse += &format!(
            "data: {}\n\n",
            json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}})
        );
        sse += "data: [DONE]\n\n";
        ([("content-type", "text/event-stream")], sse).into_response()
    } else {
        axum::Json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5}
        }))
        .into_response()
    }
}

/// A local server that records every request (headers and body) and answers `ok`; its base
/// URL and the record.
pub async fn recorder() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> =
        Default::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push((headers, body));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{}", addr.port()), seen)
}

/// A WebSocket client.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket; `Err` carries the HTTP status of a refused upgrade.
pub async fn connect(url: &str) -> Result<Socket, u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("websocket connect to {url}: {e}"),
    }
}

/// The next JSON event from a socket (pings skipped), within 10 s.
/// The next event of `kind` on `socket`, skipping the others (a notification socket also carries
/// the caller's activity feed).
pub async fn next_event_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let event = next_event(socket).await;
        if event["type"] == kind {
            return event;
        }
    }
}

pub async fn next_event(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("an event within 10 s")
            .expect("socket open")
            .expect("socket frame");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON event"),
            Message::Close(frame) => panic!("socket closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Events until one for which `last` holds (inclusive).
pub async fn events_until(socket: &mut Socket, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(socket).await;
        let done = last(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// Defines a test that runs `scenario` on SQLite and one that runs it on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::helpers::run($crate::helpers::Backend::Sqlite, super::$scenario).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::helpers::run($crate::helpers::Backend::Postgres, super::$scenario).await;
            }
        }
    };
    // A scenario that starts its own hosts (e.g. `nova` processes) from the backend alone.
    (backend $scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario($crate::helpers::Backend::Postgres).await;
            }
        }
    };
    ($scenario:ident, $configure:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::helpers::run_with(
                    $crate::helpers::Backend::Sqlite,
                    $configure,
                    super::$scenario,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::helpers::run_with(
                    $crate::helpers::Backend::Postgres,
                    $configure,
                    super::$scenario,
                )
                .await;
            }
        }
    };
}

/// Starts the `nova` binary with `env` (and nothing else of this environment) on a port it
/// picks itself: the process and its base URL, once it listens. A port found free beforehand
/// could be taken by a parallel test's host in between.
pub async fn start_nova(env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nova"))
        .env_clear()
        .envs(env.iter().copied())
        .env("NOVA_BIND", "127.0.0.1:0")
        // The tests' mock servers are local.
        .env("NOVA_ALLOW_PRIVATE_URLS", "*")
        .env("NOVA_AUTH_RATE_LIMIT", "10000")
        .env("NOVA_CHAT_RATE_LIMIT", "10000")
        .env("NOVA_JOB_RATE_LIMIT", "10000")
        .env("RUST_LOG", "warn,nova=info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start nova");
    let stdout = child.stdout.take().expect("nova's stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let listening = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    };
    let base = tokio::time::timeout(std::time::Duration::from_secs(30), listening)
        .await
        .ok()
        .flatten()
        .expect("nova did not start listening");
    // Keeps reading, so that the host never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

/// Polls `check` every 50 ms until it gives a value, for at most 15 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A receiver that records each request at once and answers after `delay`.
pub async fn slow_receiver(
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(body);
            tokio::time::sleep(delay).await;
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}
