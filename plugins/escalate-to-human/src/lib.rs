//! Escalate to a human: emits `chat.escalate` for the session of the triggering event (or the
//! one in the parameters); the host marks it escalated and alerts the workspace.

use nova_plugin_sdk::automation_action::{Event, Guest, host};
use serde_json::{Value, json};

struct Escalate;

impl Guest for Escalate {
    fn run(params: String, event: Event) -> Result<String, String> {
        let params: Value =
            serde_json::from_str(&params).map_err(|e| format!("bad parameters: {e}"))?;
        let trigger: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let session_id = params["session_id"]
            .as_str()
            .or(trigger["session_id"].as_str())
            .ok_or("no session: give `session_id` or trigger on a chat event")?;
        let reason = params["reason"]
            .as_str()
            .unwrap_or("an automation rule asked for a human");
        host::events::emit(&Event {
            kind: "chat.escalate".into(),
            payload: json!({"session_id": session_id, "reason": reason}).to_string(),
        })?;
        Ok(json!({"escalated": session_id}).to_string())
    }
}

nova_plugin_sdk::automation_action::export!(Escalate);
