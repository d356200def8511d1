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

/// Adds the OpenAPI 3.1 `webhooks` section to the document: one `POST` per event type (and
/// `webhook.test`), whose body is `{type, timestamp, data}` with the type's
/// `EventData.<type>` component, and the Standard Webhooks headers.
pub fn document(openapi: &mut serde_json::Value) {
    use serde_json::json;
    let header = |name: &str, description: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
            "schema": {"type": "string"}})
    };
    let parameters = json!([
        header(
            "webhook-id",
            "The event's id: the same on every retry of it; dedupe by it."
        ),
        header("webhook-timestamp", "Unix seconds of this attempt."),
        header(
            "webhook-signature",
            "`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the secret's base64-decoded part after `whsec_`; space-separated while two secrets are live."
        ),
    ]);
    let mut webhooks = serde_json::Map::new();
    let types = crate::events::catalogue::TYPES
        .iter()
        .map(|t| (t.name, t.description, json!({"$ref": format!("#/components/schemas/EventData.{}", t.name)})))
        .chain(std::iter::once((
            "webhook.test",
            "Sent by POST /api/webhooks/{id}/test.",
            json!({"type": "object", "properties": {"webhook_id": {"type": "string", "format": "uuid"},
                "workspace_id": {"type": "string", "format": "uuid"}, "message": {"type": "string"}}}),
        )));
    for (name, description, data) in types {
        webhooks.insert(
            name.to_owned(),
            json!({"post": {
                "tags": ["webhooks"],
                "summary": description,
                "parameters": parameters,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": {"const": name},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "data": data,
                    }}}}},
                "responses": {"2XX": {"description": "Received: any 2xx ends the delivery; other answers are retried, 410 disables the endpoint."}},
            }}),
        );
    }
    openapi["webhooks"] = serde_json::Value::Object(webhooks);
}

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
