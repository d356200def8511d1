//! Update priority: emits `chat.priority` with the session and the new priority.

use nova_plugin_sdk::automation_action::{Event, Guest, host};
use serde_json::{Value, json};

struct UpdatePriority;

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

impl Guest for UpdatePriority {
    fn run(params: String, event: Event) -> Result<String, String> {
        let params: Value =
            serde_json::from_str(&params).map_err(|e| format!("bad parameters: {e}"))?;
        let trigger: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let session_id = params["session_id"]
            .as_str()
            .or(trigger["session_id"].as_str())
            .ok_or("no session: give `session_id` or trigger on a chat event")?;
        let priority = params["priority"].as_str().unwrap_or("high");
        if !PRIORITIES.contains(&priority) {
            return Err(format!("priority must be one of {PRIORITIES:?}"));
        }
        host::events::emit(&Event {
            kind: "chat.priority".into(),
            payload: json!({"session_id": session_id, "priority": priority}).to_string(),
        })?;
        Ok(json!({"session_id": session_id, "priority": priority}).to_string())
    }
}

nova_plugin_sdk::automation_action::export!(UpdatePriority);
