//! Misbehaves as its input asks: `loop`, `memory`, `trap`, `http <url>`, `kv`, `kv-fill`,
//! `log-flood`, `print` (to stdout and stderr), `priority <session id>` (emits `chat.priority`)
//! — it logs what it was asked first;
//! anything else is echoed back as a tag. The host must survive each and report a clear error.

use nova_plugin_sdk::auto_tagger::{Event, Guest, HttpRequest, Scored, Tagging, host};

struct Hostile;

impl Guest for Hostile {
    fn suggest(_title: String, text: String) -> Result<Tagging, String> {
        let mut words = text.split_whitespace();
        let command = words.clone().next().unwrap_or_default();
        host::log::write(host::log::Level::Info, &format!("asked to {command}"));
        match words.next().unwrap_or_default() {
            "log-flood" => {
                for i in 0..500 {
                    host::log::write(host::log::Level::Debug, &format!("line {i}"));
                }
                Ok(Tagging {
                    tags: Vec::new(),
                    categories: Vec::new(),
                })
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("asked to trap"),
            "http" => {
                let url = words
                    .next()
                    .unwrap_or("https://evil.example.net/")
                    .to_owned();
                let response = host::http::send(&HttpRequest {
                    method: "GET".into(),
                    url,
                    headers: vec![],
                    body: vec![],
                })?;
                Ok(tagged(&format!("status {}", response.status)))
            }
            "kv" => {
                let n = host::kv::get("count")?
                    .and_then(|v| String::from_utf8(v).ok())
                    .and_then(|s| s.parse::<u32>().ok())
                    .unwrap_or(0)
                    + 1;
                host::kv::set("count", n.to_string().as_bytes())?;
                Ok(tagged(&format!("count {n}")))
            }
            "print" => {
                println!("to stdout");
                eprintln!("to stderr");
                Ok(tagged("printed"))
            }
            "priority" => {
                let session = words.next().unwrap_or_default();
                host::events::emit(&Event {
                    kind: "chat.priority".into(),
                    payload: format!(r#"{{"session_id": "{session}", "priority": "urgent"}}"#),
                })?;
                Ok(tagged("emitted"))
            }
            "kv-fill" => {
                // New 64 KiB values until the store refuses one.
                for i in 0..10_000 {
                    if let Err(refused) = host::kv::set(&format!("fill-{i}"), &[7; 65_536]) {
                        return Ok(tagged(&format!("stored {i}: {refused}")));
                    }
                }
                Ok(tagged("never refused"))
            }
            _ => Ok(tagged(&text)),
        }
    }
}

fn tagged(name: &str) -> Tagging {
    Tagging {
        tags: vec![Scored {
            name: name.to_owned(),
            confidence: 1.0,
        }],
        categories: vec![],
    }
}

nova_plugin_sdk::auto_tagger::export!(Hostile);
