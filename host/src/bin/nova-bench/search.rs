//! `nova-bench search`: uploads documents through `POST /api/knowledge/upload/bulk` until the
//! index holds about N chunks, reports the ingest throughput (files and chunks a second, until
//! every file is indexed), then the p50/p99 of `GET /api/knowledge/search` for random words.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::http::{InProcessHost, percentile};

#[derive(clap::Args)]
pub struct Args {
    /// Chunks to index (about 1,000 per file).
    #[arg(long, default_value_t = 100_000)]
    chunks: usize,
    /// Search requests to time.
    #[arg(long, default_value_t = 1_000)]
    requests: usize,
}

const CHUNKS_PER_FILE: usize = 1_000;

fn vocabulary(rng: &mut StdRng) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "ba", "de", "fu", "ga", "hi", "jo",
        "ku", "li", "mo", "nu", "pa", "qui", "re", "so", "tu",
    ];
    (0..5_000)
        .map(|_| {
            (0..rng.gen_range(2..4))
                .map(|_| SYLLABLES[rng.gen_range(0..SYLLABLES.len())])
                .collect()
        })
        .collect()
}

fn document(rng: &mut StdRng, words: &[String], index: usize) -> String {
    let mut text = format!("Document {index}.\n\n");
    for _ in 0..CHUNKS_PER_FILE {
        let sentence_count = rng.gen_range(8..12);
        for _ in 0..sentence_count {
            let n = rng.gen_range(8..14);
            let sentence: Vec<&str> = (0..n)
                .map(|_| words[rng.gen_range(0..words.len())].as_str())
                .collect();
            text.push_str(&sentence.join(" "));
            text.push_str(". ");
        }
        text.push_str("\n\n");
    }
    text
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        addr,
        mut conn,
        token,
    } = InProcessHost::start(|_| {}).await?;
    let db = state.db.clone();
    let backend = db.backend_name();

    let mut rng = StdRng::seed_from_u64(42);
    let words = vocabulary(&mut rng);
    let files = args.chunks.div_ceil(CHUNKS_PER_FILE).max(1);
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let started = Instant::now();
    let mut uploads = Vec::new();
    for batch in (0..files).collect::<Vec<_>>().chunks(8) {
        let mut form = reqwest::multipart::Form::new();
        for i in batch {
            form = form.part(
                "files",
                reqwest::multipart::Part::bytes(document(&mut rng, &words, *i).into_bytes())
                    .file_name(format!("doc-{i}.txt")),
            );
        }
        let r: Value = client
            .post(format!("{base}/api/knowledge/upload/bulk"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await?
            .json()
            .await?;
        uploads.push(r["upload_id"].as_str().context("no upload id")?.to_owned());
    }
    for id in &uploads {
        loop {
            let s = conn
                .request(
                    "GET",
                    &format!("/api/knowledge/upload/bulk/{id}"),
                    Some(&token),
                    None,
                )
                .await?;
            if s["done"] == true {
                if s["files"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["status"] != "indexed"))
                {
                    bail!("a file was not indexed: {s}");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let ingest = started.elapsed().as_secs_f64();
    let (chunks,): (i64,) = db
        .fetch_one("SELECT COUNT(*) FROM document_chunks", Vec::new())
        .await?;
    db.execute("ANALYZE", Vec::new()).await?;
    println!(
        "indexed {files} files, {chunks} chunks on {backend} in {ingest:.1} s: {:.2} files/s, {:.0} chunks/s",
        files as f64 / ingest,
        chunks as f64 / ingest
    );

    // Every other query is one word, where a frequent word matches the most chunks.
    let mut latencies = Vec::with_capacity(args.requests);
    let mut one_word = Vec::with_capacity(args.requests / 2 + 1);
    let mut hits = 0usize;
    for i in 0..args.requests + 50 {
        let q = if i % 2 == 0 {
            words[rng.gen_range(0..words.len())].clone()
        } else {
            format!(
                "{} {}",
                words[rng.gen_range(0..words.len())],
                words[rng.gen_range(0..words.len())]
            )
        };
        let t = Instant::now();
        let r = conn
            .request(
                "GET",
                &format!("/api/knowledge/search?q={}&limit=10", q.replace(' ', "%20")),
                Some(&token),
                None,
            )
            .await?;
        if i >= 50 {
            latencies.push(t.elapsed());
            if i % 2 == 0 {
                one_word.push(t.elapsed());
            }
            hits += r["results"].as_array().map_or(0, Vec::len);
        }
    }
    latencies.sort();
    one_word.sort();
    println!(
        "search over {chunks} chunks: p50 {:.2} ms, p99 {:.2} ms ({:.1} results a query); one-word queries p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        hits as f64 / args.requests as f64,
        percentile(&one_word, 0.50),
        percentile(&one_word, 0.99),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
