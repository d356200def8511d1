//! `http`: requests to the hosts the manifest declares and the admin approved.

use std::time::{Duration, Instant};

use super::super::store::PluginState;
use super::super::{Capability, HttpRequest, HttpResponse, wit};
use crate::infra::outbound::{error_chain, read_limited};

const HTTP_MAX_BODY: usize = 1 << 20;

/// Hosts are matched exactly, or by a `*.` suffix pattern.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == p,
        }
    })
}

impl wit::http::Host for PluginState {
    async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, String> {
        self.require(Capability::Http)?;
        let url = self.http.check(&request.url).map_err(|e| e.to_string())?;
        let host = url.host_str().unwrap_or_default();
        if !host_allowed(&self.grants.http_hosts, host) {
            return Err(format!(
                "the host `{host}` is not one this plugin declared and the admin approved"
            ));
        }
        let method = reqwest::Method::from_bytes(request.method.to_uppercase().as_bytes())
            .map_err(|_| format!("bad method `{}`", request.method))?;
        let remaining = self.stop_at.saturating_duration_since(Instant::now());
        let mut builder = self
            .http
            .request(method, url.as_str())
            .map_err(|e| e.to_string())?
            .timeout(remaining.max(Duration::from_millis(1)))
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = read_limited(response, HTTP_MAX_BODY).await?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_match_exactly_or_by_suffix() {
        let allowed = vec![
            "hooks.slack.com".to_owned(),
            "*.webhook.office.com".to_owned(),
        ];
        assert!(host_allowed(&allowed, "hooks.slack.com"));
        assert!(host_allowed(&allowed, "acme.webhook.office.com"));
        assert!(!host_allowed(&allowed, "webhook.office.com.evil.net"));
        assert!(!host_allowed(&allowed, "evil.net"));
        assert!(!host_allowed(&allowed, "slack.com"));
    }
}
