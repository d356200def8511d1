//! Slack: a notification becomes a Block Kit message posted to the configured Incoming Webhook.

use nova_plugin_sdk::integration::{Guest, HttpRequest, Notification, host};
use serde_json::{Value, json};

struct Slack;

/// The message Slack's Incoming Webhooks accept.
pub fn payload(n: &Notification, username: &str) -> Value {
    let marker = match n.severity.as_str() {
        "critical" => ":red_circle:",
        "warning" => ":warning:",
        _ => ":large_blue_circle:",
    };
    let mut text = format!("{marker} *{}*\n{}", n.title, n.text);
    if let Some(url) = &n.url {
        text += &format!("\n<{url}|Open in Nova>");
    }
    json!({
        "username": username,
        "text": format!("{}: {}", n.title, n.text),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    })
}

impl Guest for Slack {
    fn notify(notification: Notification) -> Result<(), String> {
        let url = host::config::get("webhook_url").ok_or("webhook_url is not configured")?;
        let username = host::config::get("username").unwrap_or_else(|| "Nova".into());
        let response = host::http::send(&HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: payload(&notification, &username).to_string().into_bytes(),
        })?;
        if response.status / 100 != 2 {
            return Err(format!(
                "Slack answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
        }
        Ok(())
    }
}

nova_plugin_sdk::integration::export!(Slack);
