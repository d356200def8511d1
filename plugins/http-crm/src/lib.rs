//! CRM webhook: each notification is POSTed as JSON to the configured endpoint, with the API
//! key as a bearer token; the endpoint's answer is kept (`last_status` in the plugin's store).

use nova_plugin_sdk::integration::{Guest, HttpRequest, Notification, host};
use serde_json::json;

struct HttpCrm;

impl Guest for HttpCrm {
    fn notify(n: Notification) -> Result<(), String> {
        let endpoint = host::config::get("endpoint").ok_or("endpoint is not configured")?;
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(key) = host::config::get("api_key") {
            headers.push(("authorization".into(), format!("Bearer {key}")));
        }
        let body = json!({
            "source": "nova",
            "title": n.title,
            "text": n.text,
            "severity": n.severity,
            "url": n.url,
        });
        let response = host::http::send(&HttpRequest {
            method: "POST".into(),
            url: endpoint,
            headers,
            body: body.to_string().into_bytes(),
        })?;
        host::log::write(
            host::log::Level::Info,
            &format!("the CRM answered {}", response.status),
        );
        if response.status / 100 != 2 {
            return Err(format!("the CRM answered {}", response.status));
        }
        Ok(())
    }
}

nova_plugin_sdk::integration::export!(HttpCrm);
