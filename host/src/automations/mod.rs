//! `/api/automations/*`: automation rules over the event log. A rule of a workspace listens to
//! one event type (the seed's triggers read `chat.message.created`), and when its trigger
//! fires, runs its actions through automation-action and integration plugins. The rules hear
//! of events through their consumer ([`engine::RuleEngine`]), never by being called.

mod actions;
pub mod engine;
mod rules;
mod runs;
pub mod trigger;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub use actions::event_link;
pub use trigger::words;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(rules::router())
        .merge(runs::router())
}
