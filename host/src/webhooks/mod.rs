//! `/api/webhooks/*`: outbound webhooks. An endpoint is one more consumer of the event log
//! (`fanout` turns each event into deliveries); `sender` sends them, signed by the Standard
//! Webhooks specification, with durable retries; `deliveries` is their log.

pub mod deliveries;
mod endpoints;
pub mod fanout;
pub mod sender;
pub mod signing;
pub mod usage;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use fanout::WebhookFanout;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(endpoints::create_webhook, endpoints::list_webhooks))
        .routes(routes!(
            endpoints::get_webhook,
            endpoints::update_webhook,
            endpoints::delete_webhook
        ))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(deliveries::test_webhook))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::retry_delivery))
}
