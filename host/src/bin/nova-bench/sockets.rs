//! `nova-bench sockets`: starts a `nova` host process (SQLite in a temp dir), opens many
//! WebSocket clients spread over chat sessions, reports the host's resident memory, and
//! the time from a `POST …/messages` to the message's arrival on each participant's socket.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::http::{HostProcess, percentile, register};

#[derive(clap::Args)]
pub struct Args {
    /// WebSocket clients to hold.
    #[arg(long, default_value_t = 5_000)]
    clients: usize,
    /// Chat sessions the clients are spread over.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Messages posted (each to one session, in turn).
    #[arg(long, default_value_t = 200)]
    rounds: usize,
}

/// One delivery: which session, which sequence number, when.
type Delivery = (usize, i64, Instant);

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.sessions == 0 || args.clients < args.sessions {
        bail!("--clients must be at least --sessions, which must be at least 1");
    }
    let host = HostProcess::start(&[("NOVA_CHAT_RATE_LIMIT", "1000000")]).await?;
    let (addr, mut conn) = (host.addr, host.conn().await?);

    let token = register(&mut conn).await?;
    let agent = conn
        .request(
            "POST",
            "/api/projects",
            Some(&token),
            Some(json!({"name": "Bench agent", "settings": {"fallback_message": "ok"}})),
        )
        .await?;
    let agent_id = agent["id"].as_str().context("no agent id")?.to_owned();
    let mut session_ids = Vec::new();
    for _ in 0..args.sessions {
        let s = conn
            .request(
                "POST",
                "/api/chat/sessions",
                Some(&token),
                Some(json!({"agent_id": agent_id})),
            )
            .await?;
        session_ids.push(s["id"].as_str().context("no session id")?.to_owned());
    }
    let rss_before = host.rss_kib()?;

    let (tx, mut deliveries) = mpsc::unbounded_channel::<Delivery>();
    let connected = Instant::now();
    let mut readers = Vec::with_capacity(args.clients);
    for batch in (0..args.clients).collect::<Vec<_>>().chunks(250) {
        let mut opening = Vec::new();
        for &client in batch {
            let which = client % args.sessions;
            let url = format!("ws://{addr}/ws/chat/{}", session_ids[which]);
            let token = token.clone();
            opening.push(tokio::spawn(async move {
                let mut request = url.into_client_request()?;
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let (socket, _) = tokio_tungstenite::connect_async(request).await?;
                anyhow::Ok((which, socket))
            }));
        }
        for opened in opening {
            let (which, mut socket) = opened.await??;
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                while let Some(Ok(msg)) = socket.next().await {
                    if let Message::Text(text) = msg
                        && let Ok(event) = serde_json::from_str::<Value>(&text)
                        && event["type"] == "message"
                        && event["message"]["role"] == "user"
                    {
                        let seq = event["seq"].as_i64().unwrap_or(-1);
                        let _ = tx.send((which, seq, Instant::now()));
                    }
                }
            }));
        }
    }
    println!(
        "connected {} clients over {} sessions in {:.1} s",
        args.clients,
        args.sessions,
        connected.elapsed().as_secs_f64()
    );
    // Let the host settle before measuring its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = host.rss_kib()?;

    let mut per_socket = Vec::new();
    let mut fan_out = Vec::new();
    let mut next_seq: HashMap<usize, i64> = HashMap::new();
    for round in 0..args.rounds {
        let which = round % args.sessions;
        let expected =
            args.clients / args.sessions + usize::from(which < args.clients % args.sessions);
        // Each post makes two messages: the user's and the agent's.
        let seq = *next_seq.entry(which).and_modify(|s| *s += 2).or_insert(1);
        let sent = Instant::now();
        conn.request(
            "POST",
            &format!("/api/chat/sessions/{}/messages", session_ids[which]),
            Some(&token),
            Some(json!({"content": format!("round {round}")})),
        )
        .await?;
        let mut got = 0;
        let mut last = Duration::ZERO;
        while got < expected {
            let (s, q, at) = tokio::time::timeout(Duration::from_secs(30), deliveries.recv())
                .await
                .context("a delivery within 30 s")?
                .context("readers ended")?;
            if s == which && q == seq {
                let latency = at.duration_since(sent);
                per_socket.push(latency);
                last = last.max(latency);
                got += 1;
            }
        }
        fan_out.push(last);
    }
    per_socket.sort();
    fan_out.sort();
    println!(
        "host RSS: {:.1} MiB idle, {:.1} MiB with {} sockets ({:.1} KiB per socket)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        args.clients,
        (rss_after.saturating_sub(rss_before)) as f64 / args.clients as f64
    );
    println!(
        "POST → delivery on each socket: p50 {:.2} ms, p99 {:.2} ms ({} deliveries)",
        percentile(&per_socket, 0.50),
        percentile(&per_socket, 0.99),
        per_socket.len()
    );
    println!(
        "POST → delivery on every participant ({} per session): p50 {:.2} ms, p99 {:.2} ms",
        args.clients / args.sessions,
        percentile(&fan_out, 0.50),
        percentile(&fan_out, 0.99)
    );
    for r in readers {
        r.abort();
    }
    host.stop().await;
    Ok(())
}
