//! Send a notification: emits `notification` with a title, a message and optionally whom it is
//! for (`user_id`, `user_ids`, `roles`); the host delivers it on those members' notification
//! sockets, or every member's when none is named.

use nova_plugin_sdk::automation_action::{Event, Guest, host};
use serde_json::{Value, json};

struct SendNotification;

impl Guest for SendNotification {
    fn run(params: String, event: Event) -> Result<String, String> {
        let params: Value =
            serde_json::from_str(&params).map_err(|e| format!("bad parameters: {e}"))?;
        let title = params["title"].as_str().unwrap_or("Automation");
        let message = params["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("The event `{}` happened.", event.kind));
        let mut payload = json!({"title": title, "message": message});
        for audience in ["user_id", "user_ids", "roles"] {
            if !params[audience].is_null() {
                payload[audience] = params[audience].clone();
            }
        }
        host::events::emit(&Event {
            kind: "notification".into(),
            payload: payload.to_string(),
        })?;
        Ok(json!({"sent": true}).to_string())
    }
}

nova_plugin_sdk::automation_action::export!(SendNotification);
