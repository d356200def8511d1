//! Microsoft Teams: a notification becomes a MessageCard posted to the channel's webhook.

use nova_plugin_sdk::integration::{Guest, HttpRequest, Notification, host};
use serde_json::{Value, json};

struct Teams;

pub fn card(n: &Notification) -> Value {
    let color = match n.severity.as_str() {
        "critical" => "D13438",
        "warning" => "FFB900",
        _ => "0078D4",
    };
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": color,
        "summary": n.title,
        "title": n.title,
        "text": n.text,
    });
    if let Some(url) = &n.url {
        card["potentialAction"] = json!([{"@type": "OpenUri", "name": "Open in Nova",
            "targets": [{"os": "default", "uri": url}]}]);
    }
    card
}

impl Guest for Teams {
    fn notify(notification: Notification) -> Result<(), String> {
        let url = host::config::get("webhook_url").ok_or("webhook_url is not configured")?;
        let response = host::http::send(&HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: card(&notification).to_string().into_bytes(),
        })?;
        if response.status / 100 != 2 {
            return Err(format!("Teams answered {}", response.status));
        }
        Ok(())
    }
}

nova_plugin_sdk::integration::export!(Teams);
