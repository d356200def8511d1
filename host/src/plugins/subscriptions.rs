//! Integrations that fire on events: an installation subscribed to event types (`events` in
//! its install body) is sent each matching event of its workspace through `notify`, with the
//! feed's sentence, a severity and a link back into Nova. One consumer of the event log.

use super::{Installed, Kind, installed_in, invoke};
use crate::error::AppResult;
use crate::events::{actor_names, actor_of, matches, summary};
use crate::infra::eventlog::{self, Consumer, Event, Handled};
use crate::infra::sandbox::{Call, Notification};
use crate::state::AppState;

pub struct IntegrationSubscriptions(pub AppState);

const NAME: &str = "integrations";

impl Consumer for IntegrationSubscriptions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a> {
        Box::pin(async move { deliver(&self.0, event).await.map_err(|e| e.to_string()) })
    }
}

fn subscribed(installed: &Installed, event: &Event) -> bool {
    installed.enabled
        && installed.manifest.0.kind == Kind::Integration
        && installed.events.0.iter().any(|p| matches(p, &event.kind))
}

async fn deliver(state: &AppState, event: &Event) -> AppResult<()> {
    let targets: Vec<Installed> = installed_in(&state.db, event.workspace_id)
        .await?
        .into_iter()
        .filter(|i| subscribed(i, event))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let names = actor_names(&state.db, std::slice::from_ref(event)).await?;
    let text = summary(event, &actor_of(event, &names));
    for target in targets {
        if !eventlog::first_time(
            &state.db,
            NAME,
            event.id,
            &target.installation_id.to_string(),
        )
        .await?
        {
            continue;
        }
        let call = Call::Notify(Notification {
            title: title_of(&event.kind),
            text: text.clone(),
            url: crate::automations::event_link(state, event),
            severity: severity_of(&event.kind).into(),
        });
        // A failing integration is in its invocation log; it does not hold back the others.
        invoke(state, &target, "event", call).await?.ok();
    }
    Ok(())
}

/// "Agent error", "Chat session escalated"…
fn title_of(kind: &str) -> String {
    let words = kind.replace(['.', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

fn severity_of(kind: &str) -> &'static str {
    match kind {
        "agent.error" => "critical",
        "chat.session.escalated" => "warning",
        _ => "info",
    }
}
