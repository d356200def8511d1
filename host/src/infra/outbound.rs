//! The outbound guard: every request the server makes for a user or a plugin (plugin `http`,
//! model and speech providers, webhooks) goes through one client that
//! - resolves names itself and refuses loopback, private, link-local, unique-local, CGNAT,
//!   multicast, reserved and metadata addresses (IPv4 and IPv6, IPv4-mapped included), then
//!   connects to the address it checked — no second lookup, so DNS rebinding gains nothing;
//! - checks hosts written as IP literals the same way (they are never resolved);
//! - follows no redirects and uses no proxy from the environment;
//! - reads response bodies up to a limit while they stream.
//!
//! An operator who runs a local model or receiver allows it with `NOVA_ALLOW_PRIVATE_URLS`:
//! CIDRs (`10.0.0.0/8`), host names (`models.internal`), or `*` for everything (tests).
//! `NOVA_RESOLVE` pins host names to addresses; a pinned address is checked like a looked-up one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, RequestBuilder, Url};

pub use crate::config::AllowPrivate;

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// unique-local, CGNAT, multicast, documentation, benchmarking, reserved or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, the cloud metadata address among them
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local fec0::/10
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64, which embeds IPv4
        || first == 0x2002 // 6to4, which embeds IPv4
        || first == 0) // IPv4-compatible and other reserved ::/16
}

/// Why the guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("`{0}` is not a valid URL")]
    BadUrl(String),
    #[error("only http and https URLs are fetched")]
    Scheme,
    #[error(
        "`{0}` is a private, loopback, link-local or otherwise internal address, which Nova does not fetch (NOVA_ALLOW_PRIVATE_URLS allows chosen ones)"
    )]
    Private(String),
}

/// The guarded client every outbound request uses.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow: Arc<AllowPrivate>,
}

impl Outbound {
    pub fn new(allow: AllowPrivate, pins: &[(String, IpAddr)]) -> anyhow::Result<Outbound> {
        let allow = Arc::new(allow);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                allow: allow.clone(),
                pins: Arc::new(pins.iter().cloned().collect()),
            }))
            .build()?;
        Ok(Outbound { client, allow })
    }

    /// Checks `url` (scheme, and a host written as an address) and starts a request to it.
    /// A host name is checked when it is resolved, at connection time.
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, Refused> {
        let url = self.check(url)?;
        Ok(self.client.request(method, url))
    }

    /// The URL parsed and checked, as [`Outbound::request`] does.
    pub fn check(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|_| Refused::BadUrl(cut(url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused::Scheme);
        }
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(Refused::BadUrl(cut(url))),
        };
        if let Some(ip) = literal
            && !is_public(ip)
            && !self.allow.address(ip)
        {
            return Err(Refused::Private(ip.to_string()));
        }
        Ok(parsed)
    }
}

fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Resolves a host name and keeps only the addresses the guard lets through.
struct CheckedResolver {
    allow: Arc<AllowPrivate>,
    /// `NOVA_RESOLVE`: names answered without DNS.
    pins: Arc<HashMap<String, IpAddr>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        let pinned = self.pins.get(&host.to_ascii_lowercase()).copied();
        Box::pin(async move {
            let found: Vec<SocketAddr> = match pinned {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            if allow.host(&host) {
                return Ok(Box::new(found.into_iter()) as Addrs);
            }
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()) || allow.address(a.ip()))
                .collect();
            if public.is_empty() {
                let shown = found
                    .first()
                    .map_or_else(|| host.clone(), |a| format!("{host} ({})", a.ip()));
                return Err(Box::new(Refused::Private(shown)) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// An error with its causes, so that a refusal by the resolver (wrapped by the connector and
/// the client) is seen for what it is.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// Reads at most `limit` bytes of a response body, stopping as soon as more arrive.
pub async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the response is over {limit} bytes"));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading the response failed: {e}"))?;
        if body.len() + chunk.len() > limit {
            return Err(format!("the response is over {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as internal");
        }
    }

    #[test]
    fn literal_hosts_are_checked_and_allowances_parse() {
        let strict = Outbound::new(AllowPrivate::default(), &[]).unwrap();
        for url in [
            "http://127.0.0.1:6379/",
            "http://[::1]/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::ffff:169.254.169.254]/latest",
        ] {
            assert!(
                matches!(strict.check(url), Err(Refused::Private(_))),
                "{url}"
            );
        }
        assert_eq!(strict.check("ftp://example.com/"), Err(Refused::Scheme));
        assert!(strict.check("https://example.com/hook").is_ok());

        let allow = AllowPrivate::parse("10.0.0.0/8, 127.0.0.1, models.internal").unwrap();
        assert!(allow.address("10.9.8.7".parse().unwrap()));
        assert!(allow.address("127.0.0.1".parse().unwrap()));
        assert!(!allow.address("127.0.0.2".parse().unwrap()));
        assert!(allow.host("Models.Internal"));
        assert!(AllowPrivate::parse("*").unwrap().everything);
        assert!(AllowPrivate::parse("not a host!").is_err());
    }

    #[tokio::test]
    async fn a_pinned_name_is_checked_like_a_looked_up_one() {
        let pins = crate::config::parse_resolve("Hooks.Example.com=127.0.0.1").unwrap();
        assert_eq!(
            pins,
            [("hooks.example.com".to_owned(), [127, 0, 0, 1].into())]
        );
        assert!(crate::config::parse_resolve("hooks.example.com").is_err());
        assert!(crate::config::parse_resolve("hooks.example.com=nowhere").is_err());

        let strict = Outbound::new(AllowPrivate::default(), &pins).unwrap();
        let refused = strict
            .request(Method::GET, "http://hooks.example.com:9/")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let chain = error_chain(&refused);
        assert!(
            chain.contains("`hooks.example.com (127.0.0.1)` is a private"),
            "{chain}"
        );
    }
}
