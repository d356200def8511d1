//! `nova-bench collaboration`: starts a `nova` host process, puts many Yjs clients on one
//! agent's live document and times an update from one client to its arrival at every other
//! (one update at a time, each client in turn); then opens many agents' documents, one client
//! each, and reports the host's memory per open collaboration.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yrs::sync::protocol::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Text, Transact, WriteTxn};

use crate::http::{Conn, HostProcess, percentile, register};

#[derive(clap::Args)]
pub struct Args {
    /// Clients editing one document.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Updates sent (by each client in turn).
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Documents opened (one client each) for the memory figure.
    #[arg(long, default_value_t = 500)]
    documents: usize,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let host = HostProcess::start(&[]).await?;
    let mut conn = host.conn().await?;
    let token = register(&mut conn).await?;

    // 1. Many clients on one document.
    let project = agent(&mut conn, &token, "Shared").await?;
    let mut writers = Vec::new();
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut readers = Vec::new();
    for client in 0..args.clients {
        let (mut sink, mut stream) = open(host.addr, &token, &project).await?.split();
        sync(&mut sink, &mut stream).await?;
        writers.push(sink);
        let arrivals = arrivals.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(Frame::Binary(data))) = stream.next().await {
                if carries_update(&data) {
                    let _ = arrivals.send((client, Instant::now()));
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut slowest = Vec::new();
    for round in 0..args.rounds {
        let sender = round % args.clients;
        let update = {
            let doc = yrs::Doc::new();
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("system_prompt");
            text.insert(&mut txn, 0, &format!("{round} "));
            txn.encode_update_v1()
        };
        let frame = Message::Sync(SyncMessage::Update(update)).encode_v1();
        let sent = Instant::now();
        writers[sender].send(Frame::Binary(frame.into())).await?;
        let mut last = Duration::ZERO;
        for _ in 1..args.clients {
            let (_, at) = tokio::time::timeout(Duration::from_secs(30), arrived.recv())
                .await
                .context("an update within 30 s")?
                .context("readers ended")?;
            let latency = at.duration_since(sent);
            latencies.push(latency);
            last = last.max(latency);
        }
        slowest.push(last);
    }
    latencies.sort();
    slowest.sort();
    println!(
        "{} clients on one document, update → each other client: p50 {:.2} ms, p99 {:.2} ms; → the last of them: p50 {:.2} ms, p99 {:.2} ms ({} deliveries)",
        args.clients,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&slowest, 0.50),
        percentile(&slowest, 0.99),
        latencies.len()
    );
    for r in readers {
        r.abort();
    }
    drop(writers);

    // 2. Memory per open collaboration (its document and one socket).
    let mut projects = Vec::new();
    for n in 0..args.documents {
        projects.push(agent(&mut conn, &token, &format!("Agent {n}")).await?);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = host.rss_kib()?;
    let mut held = Vec::new();
    for project in &projects {
        let (mut sink, mut stream) = open(host.addr, &token, project).await?.split();
        sync(&mut sink, &mut stream).await?;
        held.push((sink, stream));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = host.rss_kib()?;
    println!(
        "{} open collaborations: host RSS {:.1} → {:.1} MiB, {:.1} KiB each (a document with a 1 KiB prompt and one socket)",
        args.documents,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / args.documents as f64
    );
    drop(held);
    host.stop().await;
    Ok(())
}

/// An agent with a 1 KiB system prompt.
async fn agent(conn: &mut Conn, token: &str, name: &str) -> anyhow::Result<String> {
    let prompt = "You answer customers' questions briefly and kindly. ".repeat(20);
    let project = conn
        .request(
            "POST",
            "/api/projects",
            Some(token),
            Some(json!({"name": name, "system_prompt": prompt})),
        )
        .await?;
    Ok(project["id"].as_str().context("no project id")?.to_owned())
}

async fn open(addr: std::net::SocketAddr, token: &str, project: &str) -> anyhow::Result<Socket> {
    let mut request =
        format!("ws://{addr}/ws/projects/{project}/collaborate").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    // No Nagle on the client either: each update is one small frame.
    Ok(
        tokio_tungstenite::connect_async_with_config(request, None, true)
            .await?
            .0,
    )
}

/// The handshake: our (empty) state vector, until the document arrives as sync step 2.
async fn sync<S, R>(sink: &mut S, stream: &mut R) -> anyhow::Result<()>
where
    S: SinkExt<Frame> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
    R: StreamExt<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let sv = yrs::Doc::new().transact().state_vector();
    let step1 = Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1();
    sink.send(Frame::Binary(step1.into())).await?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .context("the document within 10 s")?
            .context("socket closed")??;
        if let Frame::Binary(data) = frame
            && messages(&data)
                .iter()
                .any(|m| matches!(m, Message::Sync(SyncMessage::SyncStep2(_))))
        {
            return Ok(());
        }
    }
}

fn messages(data: &[u8]) -> Vec<Message> {
    let mut decoder = DecoderV1::from(data);
    MessageReader::new(&mut decoder)
        .map_while(Result::ok)
        .collect()
}

fn carries_update(data: &[u8]) -> bool {
    messages(data)
        .iter()
        .any(|m| matches!(m, Message::Sync(SyncMessage::Update(_))))
}
