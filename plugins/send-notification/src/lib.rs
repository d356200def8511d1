//! Send a notification: emits `notification` with a title, a message and optionally one user;
//! the host delivers it on the members' notification sockets.

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
        if let Some(user) = params["user_id"].as_str() {
            payload["user_id"] = json!(user);
        }
        host::events::emit(&Event {
            kind: "notification".into(),
            payload: payload.to_string(),
        })?;
        Ok(json!({"sent": true}).to_string())
    }
}

nova_plugin_sdk::automation_action::export!(SendNotification);
