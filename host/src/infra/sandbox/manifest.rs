//! `nova-plugin.toml`: what a plugin is, what it asks for, and the JSON Schema subset its
//! settings are validated against.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Integration,
    AutomationAction,
    WebhookHandler,
    AutoTagger,
    AnalyticsExporter,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Integration => "integration",
            Kind::AutomationAction => "automation-action",
            Kind::WebhookHandler => "webhook-handler",
            Kind::AutoTagger => "auto-tagger",
            Kind::AnalyticsExporter => "analytics-exporter",
        }
    }
}

/// How a plugin is packaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// A WebAssembly component (wasm32-wasip2) of the kind's WIT world.
    #[default]
    Component,
    /// An Extism plugin (a core module from an Extism PDK).
    Extism,
}

/// A host import a plugin may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Log,
    Kv,
    Config,
    Http,
    Events,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::Log,
        Capability::Kv,
        Capability::Config,
        Capability::Http,
        Capability::Events,
    ];

    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Kv => "kv",
            Capability::Config => "config",
            Capability::Http => "http",
            Capability::Events => "events",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and dashes.
    pub id: String,
    pub name: String,
    pub version: String,
    pub kind: Kind,
    #[serde(default)]
    pub format: PackageFormat,
    pub description: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Hosts `http` may reach (`*.example.com` for subdomains); `*` alone means hosts the
    /// admin names at install (for plugins whose endpoint is the admin's, like a CRM's).
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// A JSON Schema subset: an object whose properties are strings (optionally `secret`),
    /// integers, numbers or booleans, with `enum`, `minimum`/`maximum`, `maxLength` and
    /// `required`.
    #[serde(default = "empty_schema")]
    #[schema(value_type = Object)]
    pub config_schema: Value,
    #[serde(default = "first_version")]
    pub min_host_version: String,
    #[serde(default)]
    pub instructions: String,
}

/// The 1-based line and column (in characters) of a byte offset of `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

fn empty_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn first_version() -> String {
    "0.1.0".into()
}

/// `major.minor.patch` as numbers, for ordering versions.
pub fn version_parts(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().unwrap_or(Some(0))?,
    ))
}

impl Manifest {
    /// Parses and checks a manifest; the errors name the field.
    pub fn parse(text: &str) -> Result<Manifest, Vec<FieldError>> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |span| {
                let (line, column) = line_and_column(text, span.start);
                format!(" (line {line}, column {column})")
            });
            vec![FieldError::new(
                "manifest",
                format!("is not a valid nova-plugin.toml{at}: {}", e.message()),
            )]
        })?;
        let mut errors = Vec::new();
        let id_ok = (2..=64).contains(&manifest.id.len())
            && manifest
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            errors.push(FieldError::new(
                "id",
                "must be 2–64 lower-case letters, digits or dashes",
            ));
        }
        if manifest.name.trim().is_empty() || manifest.name.len() > 100 {
            errors.push(FieldError::new("name", "must hold 1–100 characters"));
        }
        if version_parts(&manifest.version).is_none() {
            errors.push(FieldError::new("version", "must be a version like 1.2.3"));
        }
        match version_parts(&manifest.min_host_version) {
            None => errors.push(FieldError::new(
                "min_host_version",
                "must be a version like 0.1.0",
            )),
            Some(wanted) if Some(wanted) > version_parts(env!("CARGO_PKG_VERSION")) => {
                errors.push(FieldError::new(
                    "min_host_version",
                    format!(
                        "asks for host {} but this host is {}",
                        manifest.min_host_version,
                        env!("CARGO_PKG_VERSION")
                    ),
                ))
            }
            Some(_) => {}
        }
        if manifest.http_hosts.iter().filter(|h| *h != "*").any(|h| {
            h.is_empty()
                || h.contains('/')
                || h.contains(':')
                || h.trim_start_matches("*.").contains('*')
        }) {
            errors.push(FieldError::new(
                "http_hosts",
                "must be host names, optionally starting with `*.`",
            ));
        }
        if !manifest.http_hosts.is_empty() && !manifest.capabilities.contains(&Capability::Http) {
            errors.push(FieldError::new(
                "http_hosts",
                "are declared but the `http` capability is not asked for",
            ));
        }
        if manifest.format == PackageFormat::Extism
            && manifest
                .capabilities
                .iter()
                .any(|c| matches!(c, Capability::Kv | Capability::Http | Capability::Events))
        {
            errors.push(FieldError::new(
                "capabilities",
                "Extism plugins get `log` and `config` only",
            ));
        }
        if let Err(e) = check_schema(&manifest.config_schema) {
            errors.push(FieldError::new("config_schema", e));
        }
        if errors.is_empty() {
            Ok(manifest)
        } else {
            Err(errors)
        }
    }

    /// The names of the settings marked `secret` (encrypted at rest, never shown back).
    pub fn secret_keys(&self) -> Vec<String> {
        self.keys_where(|s| s.get("secret") == Some(&Value::Bool(true)))
    }

    /// The settings that are URLs (`format = "uri"`): where the plugin sends things.
    pub fn uri_keys(&self) -> Vec<String> {
        self.keys_where(|s| s.get("format").and_then(Value::as_str) == Some("uri"))
    }

    fn keys_where(&self, wanted: impl Fn(&Value) -> bool) -> Vec<String> {
        properties(&self.config_schema)
            .map(|p| {
                p.iter()
                    .filter(|(_, s)| wanted(s))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Validates an admin's settings against the schema; the errors name the setting.
    pub fn validate_config(&self, config: &Map<String, Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let props = properties(&self.config_schema).cloned().unwrap_or_default();
        for key in config.keys().filter(|k| !props.contains_key(*k)) {
            errors.push(FieldError::new(
                format!("config.{key}"),
                "is not a setting of this plugin",
            ));
        }
        if let Some(required) = self.config_schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if config.get(key).is_none_or(Value::is_null) {
                    errors.push(FieldError::new(format!("config.{key}"), "is required"));
                }
            }
        }
        for (key, schema) in &props {
            let Some(value) = config.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            if let Err(problem) = check_value(schema, value) {
                errors.push(FieldError::new(format!("config.{key}"), problem));
            }
        }
        errors
    }
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn check_schema(schema: &Value) -> Result<(), String> {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("must be an object schema (`type = \"object\"`)".into());
    }
    for (key, prop) in properties(schema).into_iter().flatten() {
        match prop.get("type").and_then(Value::as_str) {
            Some("string" | "integer" | "number" | "boolean") => {}
            _ => {
                return Err(format!(
                    "property `{key}` must have type string, integer, number or boolean"
                ));
            }
        }
    }
    Ok(())
}

fn check_value(schema: &Value, value: &Value) -> Result<(), String> {
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let fits = match kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    };
    if !fits {
        return Err(format!("must be a {kind}"));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("must be one of {}", Value::Array(options.clone())));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("must be at least {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("must be at most {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let max = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .unwrap_or(2_000);
        if s.chars().count() as u64 > max {
            return Err(format!("must hold at most {max} characters"));
        }
        if schema.get("format").and_then(Value::as_str) == Some("uri")
            && reqwest::Url::parse(s).is_err()
        {
            return Err("must be a URL".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        id = "slack"
        name = "Slack"
        version = "0.1.0"
        kind = "integration"
        description = "Posts to Slack"
        capabilities = ["http", "config"]
        http_hosts = ["hooks.slack.com"]
        [config_schema]
        type = "object"
        required = ["webhook_url"]
        [config_schema.properties.webhook_url]
        type = "string"
        format = "uri"
        secret = true
        [config_schema.properties.max]
        type = "integer"
        minimum = 1
        maximum = 5
    "#;

    #[test]
    fn toml_errors_say_where() {
        let broken = "id = \"x\"\nname = \"X\"\nversion = 0.1.0\n";
        let errors = Manifest::parse(broken).unwrap_err();
        assert!(
            errors[0].message.contains("(line 3, column "),
            "{}",
            errors[0].message
        );
        let unknown = "id = \"x\"\nnmae = \"X\"\n";
        let errors = Manifest::parse(unknown).unwrap_err();
        assert!(
            errors[0].message.contains("line 2"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn settings_are_checked_against_the_schema() {
        let m = Manifest::parse(MANIFEST).unwrap();
        assert_eq!(m.secret_keys(), vec!["webhook_url".to_owned()]);
        let config = serde_json::json!({"max": 9, "other": 1});
        let errors = m.validate_config(config.as_object().unwrap());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"config.other"));
        assert!(fields.contains(&"config.webhook_url"));
        assert!(fields.contains(&"config.max"));
        let good = serde_json::json!({"webhook_url": "https://hooks.slack.com/x", "max": 2});
        assert!(m.validate_config(good.as_object().unwrap()).is_empty());
    }

    #[test]
    fn a_newer_host_or_undeclared_http_is_refused() {
        let newer = MANIFEST.replace("kind =", "min_host_version = \"9.0.0\"\nkind =");
        assert!(Manifest::parse(&newer).is_err());
        let no_http = MANIFEST.replace("[\"http\", \"config\"]", "[\"config\"]");
        assert!(Manifest::parse(&no_http).is_err());
    }
}
