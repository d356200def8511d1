//! Slack slash commands: checks Slack's request signature (`v0=` HMAC-SHA256 of
//! `v0:{timestamp}:{body}` with the signing secret), then emits a `notification` with the
//! command's text and answers Slack with an ephemeral confirmation.

use hmac::{Hmac, Mac};
use nova_plugin_sdk::webhook_handler::{Event, Guest, HttpRequest, HttpResponse, host};
use serde_json::json;
use sha2::Sha256;

struct SlackCommands;

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Seconds since 1970 by the host's wall clock.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether a request signed at `timestamp` (Unix seconds) is recent enough to act on: Slack
/// asks receivers to refuse ones more than five minutes away, so a captured request cannot be
/// replayed later.
pub fn fresh(timestamp: &str, now: i64) -> bool {
    timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now - t).abs() <= 5 * 60)
}

/// Whether `signature` is Slack's signature of the request.
pub fn signed(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("v0=") else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let expected: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    mac.verify_slice(&expected).is_ok()
}

/// `application/x-www-form-urlencoded` value of `key`.
pub fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: u16, text: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({"response_type": "ephemeral", "text": text})
            .to_string()
            .into_bytes(),
    }
}

impl Guest for SlackCommands {
    fn handle(request: HttpRequest) -> Result<HttpResponse, String> {
        let secret =
            host::config::get("signing_secret").ok_or("signing_secret is not configured")?;
        let timestamp = header(&request, "x-slack-request-timestamp").unwrap_or_default();
        let signature = header(&request, "x-slack-signature").unwrap_or_default();
        if !signed(&secret, timestamp, &request.body, signature) {
            return Ok(reply(401, "The request's Slack signature is not valid."));
        }
        if !fresh(timestamp, now_unix()) {
            return Ok(reply(
                401,
                "The request's timestamp is more than five minutes away: a replay is refused.",
            ));
        }
        let body = String::from_utf8_lossy(&request.body);
        let text = form_value(&body, "text").unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(reply(200, "Say what to tell the team: /nova <message>"));
        }
        let user = form_value(&body, "user_name").unwrap_or_else(|| "someone".into());
        host::events::emit(&Event {
            kind: "notification".into(),
            payload: json!({"title": format!("Slack: {user}"), "message": text}).to_string(),
        })?;
        Ok(reply(200, "Sent to your Nova workspace."))
    }
}

nova_plugin_sdk::webhook_handler::export!(SlackCommands);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_signatures_and_forms() {
        // Slack's documented example.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert!(signed(
            "8f742231b10e8888abcd99yyyzzz85a5",
            "1531420618",
            body,
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        ));
        assert!(!signed("wrong", "1531420618", body, "v0=a2114d57"));
        assert!(fresh("1531420618", 1531420618 + 299));
        assert!(!fresh("1531420618", 1531420618 + 301));
        assert!(!fresh("not a time", 0));
        let form = String::from_utf8_lossy(body);
        assert_eq!(form_value(&form, "user_name").unwrap(), "roadrunner");
        assert_eq!(form_value(&form, "command").unwrap(), "/webhook-collect");
        assert_eq!(
            form_value("text=checkout+is+down%21", "text").unwrap(),
            "checkout is down!"
        );
    }
}
