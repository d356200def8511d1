//! The responder seam: how an agent answers. With no provider configured, the agent gives
//! the project's fallback message and marks the question unanswered. Otherwise any
//! OpenAI-compatible chat-completions endpoint answers, streamed token by token or not,
//! within a timeout.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::infra::outbound::{Outbound, error_chain, read_limited};

/// Where replies come from.
#[derive(Debug, Clone)]
pub enum Provider {
    /// No model: the fallback message.
    Fallback,
    OpenAiCompatible {
        base_url: String,
        model: String,
        api_key: Option<String>,
        stream: bool,
        timeout: Duration,
    },
}

impl Provider {
    /// The model name recorded with each reply (`none` for the fallback).
    pub fn model(&self) -> &str {
        match self {
            Provider::Fallback => "none",
            Provider::OpenAiCompatible { model, .. } => model,
        }
    }
}

/// One turn of the conversation so far.
#[derive(Debug, Clone)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyStatus {
    Ok,
    Unanswered,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub content: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub status: ReplyStatus,
}

/// The most of a provider's answer read, whole or streamed.
const REPLY_MAX_BYTES: usize = 4 << 20;

pub const DEFAULT_FALLBACK: &str =
    "I'm sorry, I can't answer that yet. A colleague will follow up with you.";

/// Asks `provider` for the next agent turn. Streamed text goes to `tokens` as it arrives.
pub async fn reply(
    outbound: &Outbound,
    provider: &Provider,
    system_prompt: &str,
    fallback: &str,
    history: &[Turn],
    tokens: mpsc::Sender<String>,
) -> Result<Reply, String> {
    match provider {
        Provider::Fallback => Ok(Reply {
            content: fallback.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            status: ReplyStatus::Unanswered,
        }),
        Provider::OpenAiCompatible {
            base_url,
            model,
            api_key,
            stream,
            timeout,
        } => {
            let mut messages = Vec::with_capacity(history.len() + 1);
            if !system_prompt.is_empty() {
                messages.push(json!({"role": "system", "content": system_prompt}));
            }
            messages.extend(
                history
                    .iter()
                    .map(|t| json!({"role": t.role, "content": t.content})),
            );
            let mut body = json!({"model": model, "messages": messages, "stream": stream});
            if *stream {
                body["stream_options"] = json!({"include_usage": true});
            }
            let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
            let mut request = outbound
                .request(Method::POST, &url)
                .map_err(|e| format!("the model provider: {e}"))?
                .json(&body);
            if let Some(key) = api_key {
                request = request.bearer_auth(key);
            }
            let call = async {
                let response = request.send().await.map_err(|e| {
                    format!("the model provider is unreachable: {}", error_chain(&e))
                })?;
                let status = response.status();
                if !status.is_success() {
                    let text = read_limited(response, 4096).await.unwrap_or_default();
                    return Err(format!(
                        "the model provider answered {status}: {}",
                        String::from_utf8_lossy(&text)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ));
                }
                if *stream {
                    read_stream(response, &tokens).await
                } else {
                    read_whole(response).await
                }
            };
            let mut reply = tokio::time::timeout(*timeout, call).await.map_err(|_| {
                format!(
                    "the model provider did not answer within {} ms",
                    timeout.as_millis()
                )
            })??;
            if reply.content.trim().is_empty() {
                return Err("the model provider returned an empty answer".into());
            }
            // Providers that report no usage get an estimate (about four characters a token).
            if reply.prompt_tokens == 0 {
                let chars: usize =
                    system_prompt.len() + history.iter().map(|t| t.content.len()).sum::<usize>();
                reply.prompt_tokens = (chars / 4).max(1) as i64;
            }
            if reply.completion_tokens == 0 {
                reply.completion_tokens = (reply.content.len() / 4).max(1) as i64;
            }
            Ok(reply)
        }
    }
}

fn usage(v: &Value) -> (i64, i64) {
    let u = &v["usage"];
    (
        u["prompt_tokens"].as_i64().unwrap_or(0),
        u["completion_tokens"].as_i64().unwrap_or(0),
    )
}

async fn read_whole(response: reqwest::Response) -> Result<Reply, String> {
    let body = read_limited(response, REPLY_MAX_BYTES)
        .await
        .map_err(|e| format!("the model provider: {e}"))?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the model provider sent malformed JSON: {e}"))?;
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("the model provider's answer has no choices[0].message.content")?
        .to_owned();
    let (prompt_tokens, completion_tokens) = usage(&v);
    Ok(Reply {
        content,
        prompt_tokens,
        completion_tokens,
        status: ReplyStatus::Ok,
    })
}

/// Reads a server-sent-events stream of chat-completion chunks.
async fn read_stream(
    response: reqwest::Response,
    tokens: &mpsc::Sender<String>,
) -> Result<Reply, String> {
    let mut content = String::new();
    let (mut prompt_tokens, mut completion_tokens) = (0, 0);
    let mut buffer = String::new();
    let mut read = 0;
    let mut body = response.bytes_stream();
    let mut done = false;
    while !done {
        let Some(chunk) = body.next().await else {
            break;
        };
        let chunk = chunk.map_err(|e| format!("the model provider's stream broke: {e}"))?;
        read += chunk.len();
        if read > REPLY_MAX_BYTES {
            return Err(format!(
                "the model provider's stream is over {REPLY_MAX_BYTES} bytes"
            ));
        }
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim();
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
                break;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| format!("the model provider sent a malformed stream event: {e}"))?;
            if let Some(delta) = v["choices"][0]["delta"]["content"].as_str()
                && !delta.is_empty()
            {
                content.push_str(delta);
                let _ = tokens.send(delta.to_owned()).await;
            }
            let (p, c) = usage(&v);
            if p > 0 || c > 0 {
                (prompt_tokens, completion_tokens) = (p, c);
            }
        }
    }
    if !done {
        return Err("the model provider's stream ended before [DONE]".into());
    }
    Ok(Reply {
        content,
        prompt_tokens,
        completion_tokens,
        status: ReplyStatus::Ok,
    })
}
