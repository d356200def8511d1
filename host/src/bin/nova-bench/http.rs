//! A minimal keep-alive HTTP/1.1 client and small helpers shared by the benchmarks.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal keep-alive HTTP/1.1 client: enough for JSON requests with `Content-Length`.
pub struct Conn {
    stream: TcpStream,
    addr: std::net::SocketAddr,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: std::net::SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            addr,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body.as_bytes()).await?;

        self.buf.clear();
        let header_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..header_end])?.to_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .context("response without Content-Length")?;
        while self.buf.len() < header_end + length {
            self.read_more().await?;
        }
        let body: Value = serde_json::from_slice(&self.buf[header_end..header_end + length])
            .unwrap_or(Value::Null);
        if status >= 400 {
            bail!("{method} {path}: {status} {body}");
        }
        Ok(body)
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A host served by this process on a fresh database (SQLite in a temp dir, or the empty
/// database `DATABASE_URL` names), with a registered user.
pub struct InProcessHost {
    pub dir: std::path::PathBuf,
    pub state: nova_host::AppState,
    pub addr: std::net::SocketAddr,
    pub conn: Conn,
    pub token: String,
}

impl InProcessHost {
    pub async fn start(
        configure: impl FnOnce(&mut nova_host::Config),
    ) -> anyhow::Result<InProcessHost> {
        let dir = temp_dir()?;
        let database_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| format!("sqlite://{}", dir.join("bench.db").display()));
        let mut config = nova_host::Config {
            database_url: Some(nova_host::config::Secret(database_url)),
            data_dir: dir.clone(),
            ..nova_host::Config::default()
        };
        configure(&mut config);
        let state = nova_host::AppState::build(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(nova_host::serve(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        let mut conn = Conn::open(addr).await?;
        let token = register(&mut conn).await?;
        Ok(InProcessHost {
            dir,
            state,
            addr,
            conn,
            token,
        })
    }
}

/// The `p` quantile (0–1) of sorted durations, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Registers the benchmark's user: its token.
pub async fn register(conn: &mut Conn) -> anyhow::Result<String> {
    let session = conn
        .request(
            "POST",
            "/api/auth/register",
            None,
            Some(
                serde_json::json!({"email": "bench@example.com", "password": "benchmark password"}),
            ),
        )
        .await?;
    Ok(session["token"].as_str().context("no token")?.to_owned())
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("nova-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A `nova` host process from the release build (SQLite in a temp dir), for benchmarks that
/// measure its memory.
pub struct HostProcess {
    pub addr: std::net::SocketAddr,
    child: tokio::process::Child,
    pid: u32,
    dir: std::path::PathBuf,
}

impl HostProcess {
    /// Starts the host with `env` added, and waits until it is ready.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<HostProcess> {
        let dir = temp_dir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let exe = std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("nova");
        let child = tokio::process::Command::new(&exe)
            .env("NOVA_BIND", addr.to_string())
            .env("NOVA_DATA_DIR", &dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {} (build it with --release first)", exe.display())
            })?;
        let pid = child.id().context("no pid")?;
        let host = HostProcess {
            addr,
            child,
            pid,
            dir,
        };
        host.conn().await?;
        Ok(host)
    }

    /// A connection, once the host answers `/readyz`.
    pub async fn conn(&self) -> anyhow::Result<Conn> {
        for _ in 0..200 {
            if let Ok(mut conn) = Conn::open(self.addr).await
                && conn.request("GET", "/readyz", None, None).await.is_ok()
            {
                return Ok(conn);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the host did not become ready at {}", self.addr)
    }

    /// The host's resident memory, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
