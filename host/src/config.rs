//! Configuration: defaults, then an optional `nova.toml`, then the environment (which wins).
//! An invalid value stops start-up with a message naming the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which internal destinations an operator allows the server to fetch (the outbound guard
/// refuses every other).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowPrivate {
    /// `*`: every destination.
    pub everything: bool,
    pub networks: Vec<IpNet>,
    /// Host names (lower-case) whose addresses are not checked.
    pub hosts: Vec<String>,
}

impl AllowPrivate {
    /// Parses `NOVA_ALLOW_PRIVATE_URLS`: a comma-separated list of CIDRs, addresses, host
    /// names, or `*`.
    pub fn parse(list: &str) -> Result<AllowPrivate, String> {
        let mut allow = AllowPrivate::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                allow.everything = true;
            } else if let Ok(net) = item.parse::<IpNet>() {
                allow.networks.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                allow.networks.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            {
                allow.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{item}` is not a CIDR, an address, a host name or `*`"
                ));
            }
        }
        Ok(allow)
    }

    pub fn host(&self, host: &str) -> bool {
        self.everything || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    pub fn address(&self, ip: IpAddr) -> bool {
        self.everything || self.networks.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `NOVA_BIND`: where the server listens.
    pub bind: SocketAddr,
    /// `DATABASE_URL`: `postgres://…` or `sqlite://…`; unset means `<data_dir>/nova.db`.
    pub database_url: Option<Secret<String>>,
    /// `REDIS_URL`: shared cache, rate limits and event bus for several replicas.
    pub redis_url: Option<Secret<String>>,
    /// `NOVA_DATA_DIR`: where the embedded database and other local state live.
    pub data_dir: PathBuf,
    /// `NOVA_MASTER_KEY`: 32 bytes (64 hex digits or base64) that encrypt secrets at rest.
    pub master_key: Option<Secret<[u8; 32]>>,
    /// `NOVA_CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `NOVA_PUBLIC_URL`: where users reach this server (`https://nova.example.com`); links
    /// that leave Nova (Slack posts, webhooks) start with it, and are relative without it.
    pub public_url: Option<String>,
    /// `NOVA_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `NOVA_SESSION_TTL_HOURS`: lifetime of a login token.
    pub session_ttl_hours: i64,
    /// `NOVA_MAX_BODY_BYTES`: the largest JSON body accepted.
    pub max_body_bytes: usize,
    /// `NOVA_BULK_RATE_LIMIT`: bulk operations a user may start per minute.
    pub bulk_rate_limit_per_minute: u32,
    /// `NOVA_AUTH_RATE_LIMIT`: logins and registrations per minute from one address, and
    /// logins per minute to one account.
    pub auth_rate_limit_per_minute: u32,
    /// `NOVA_CHAT_RATE_LIMIT`: chat messages a user may send per minute (HTTP and sockets).
    pub chat_rate_limit_per_minute: u32,
    /// `NOVA_JOB_RATE_LIMIT`: bulk uploads and analytics exports a user may start per minute.
    pub job_rate_limit_per_minute: u32,
    /// `NOVA_LLM_BASE_URL`: an OpenAI-compatible API (e.g. `https://api.openai.com/v1`) that
    /// answers for agents without a provider of their own; unset, agents give their fallback.
    pub llm_base_url: Option<String>,
    /// `NOVA_LLM_MODEL`.
    pub llm_model: String,
    /// `NOVA_LLM_API_KEY`.
    pub llm_api_key: Option<Secret<String>>,
    /// `NOVA_LLM_TIMEOUT_SECS`: how long a reply may take.
    pub llm_timeout_secs: u64,
    /// `NOVA_STT_BASE_URL`: an OpenAI-compatible transcription API (`/audio/transcriptions`).
    pub stt_base_url: Option<String>,
    /// `NOVA_STT_MODEL`.
    pub stt_model: String,
    /// `NOVA_STT_API_KEY`.
    pub stt_api_key: Option<Secret<String>>,
    /// `NOVA_TTS_BASE_URL`: an OpenAI-compatible speech API (`/audio/speech`).
    pub tts_base_url: Option<String>,
    /// `NOVA_TTS_MODEL`.
    pub tts_model: String,
    /// `NOVA_TTS_API_KEY`.
    pub tts_api_key: Option<Secret<String>>,
    /// `NOVA_ESPEAK`: the espeak-ng program for local speech (found on `PATH` by default;
    /// `off` disables it).
    pub espeak_path: Option<String>,
    /// `NOVA_MAX_AUDIO_BYTES`: the largest audio upload.
    pub max_audio_bytes: usize,
    /// `NOVA_MODEL_PRICES`: US dollars per million prompt/completion tokens by model, as
    /// `model=prompt/completion,…`; added to (and overriding) the built-in table.
    pub model_prices: std::collections::BTreeMap<String, (f64, f64)>,
    /// `NOVA_JOB_LEASE_SECS`: how long a background job stays claimed by a worker; a job whose
    /// worker died is taken up again after it.
    pub job_lease_secs: i64,
    /// `NOVA_JOB_WORKERS`: how many background jobs this host runs at once.
    pub job_workers: u32,
    /// `NOVA_WORKFLOW_WORKERS`: how many workflow runs this host drives at once.
    pub workflow_workers: u32,
    /// `NOVA_WORKFLOW_MAX_ACTIVE_RUNS`: how many runs of one workspace may be queued, running
    /// or waiting at once; more are refused (429) or, from triggers, skipped.
    pub workflow_max_active_runs: i64,
    /// `NOVA_REPORT_MIN_INTERVAL_SECS`: the shortest gap a report schedule may have between
    /// two runs.
    pub report_min_interval_secs: i64,
    /// `NOVA_EVENT_RETENTION_DAYS`: how long the event log keeps an event.
    pub event_retention_days: i64,
    /// `NOVA_PLUGIN_TIMEOUT_MS`: the wall-clock deadline of one plugin call (its host calls
    /// included); past it the plugin is stopped.
    pub plugin_timeout_ms: u64,
    /// `NOVA_PLUGIN_MEMORY_MB`: the memory limit of one plugin instance.
    pub plugin_memory_mb: u64,
    /// `NOVA_PLUGIN_LOG_KEEP`: how many of a plugin's latest calls its invocation log keeps.
    pub plugin_log_keep: u64,
    /// `NOVA_ALLOW_PRIVATE_URLS`: internal destinations the server may fetch anyway (a local
    /// model, a receiver on the same network): CIDRs, host names, or `*`.
    pub allow_private_urls: AllowPrivate,
    /// `NOVA_RESOLVE`: host names the server resolves to a fixed address instead of asking DNS
    /// (`hooks.slack.com=10.1.2.3`), as curl's `--resolve` does: an egress gateway, split DNS,
    /// or a stand-in receiver in tests. The address still passes the outbound guard.
    pub resolve: Vec<(String, IpAddr)>,
    /// `NOVA_WEBHOOK_RETRY_SCHEDULE`: the waits before each retry of a webhook delivery
    /// (`5s,5m,30m,2h,5h,10h,10h`, as Svix does); after the last, the delivery has failed.
    pub webhook_retry_schedule: Vec<std::time::Duration>,
    /// `NOVA_WEBHOOK_DISABLE_AFTER`: an endpoint whose every attempt failed for this long
    /// (`5d`), or this many times in a row (`20`), is disabled.
    pub webhook_disable_after: DisableAfter,
}

/// When a failing webhook endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DisableAfter {
    /// Failing for this long.
    Failing(std::time::Duration),
    /// This many failed attempts in a row.
    Failures(u32),
}

/// Parses a duration such as `500ms`, `5s`, `5m`, `2h` or `5d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let seconds = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is one of ms, s, m, h, d")),
    };
    n.checked_mul(seconds)
        .filter(|s| *s <= 366 * 86_400)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is over a year"))
}

/// Parses `NOVA_WEBHOOK_RETRY_SCHEDULE`: 1–20 comma-separated durations.
pub fn parse_retry_schedule(list: &str) -> Result<Vec<std::time::Duration>, String> {
    let schedule = list
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if schedule.is_empty() || schedule.len() > 20 {
        return Err("holds 1 to 20 durations".into());
    }
    Ok(schedule)
}

/// Parses `NOVA_WEBHOOK_DISABLE_AFTER`: a duration, or a count of failed attempts.
pub fn parse_disable_after(text: &str) -> Result<DisableAfter, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("a count of failures is at least 1".into()),
        Ok(count) => Ok(DisableAfter::Failures(count)),
        Err(_) => parse_duration(text).map(DisableAfter::Failing),
    }
}

/// Parses `NOVA_RESOLVE`: comma-separated `host=address` pairs.
pub fn parse_resolve(list: &str) -> Result<Vec<(String, IpAddr)>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (host, address) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not `host=address`"))?;
            let address = address
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("`{address}` in `{pair}` is not an IP address"))?;
            Ok((host.trim().to_ascii_lowercase(), address))
        })
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            redis_url: None,
            data_dir: PathBuf::from("./nova-data"),
            master_key: None,
            cors_origins: Vec::new(),
            public_url: None,
            log_format: LogFormat::Pretty,
            session_ttl_hours: 24 * 30,
            max_body_bytes: 1024 * 1024,
            bulk_rate_limit_per_minute: 10,
            auth_rate_limit_per_minute: 20,
            chat_rate_limit_per_minute: 60,
            job_rate_limit_per_minute: 20,
            llm_base_url: None,
            llm_model: "gpt-4o-mini".into(),
            llm_api_key: None,
            llm_timeout_secs: 60,
            stt_base_url: None,
            stt_model: "whisper-1".into(),
            stt_api_key: None,
            tts_base_url: None,
            tts_model: "tts-1".into(),
            tts_api_key: None,
            espeak_path: None,
            max_audio_bytes: 25 * 1024 * 1024,
            model_prices: [
                ("gpt-4o-mini", (0.15, 0.60)),
                ("gpt-4o", (2.50, 10.00)),
                ("gpt-4.1-mini", (0.40, 1.60)),
                ("gpt-4.1", (2.00, 8.00)),
                ("gpt-3.5-turbo", (0.50, 1.50)),
                ("none", (0.0, 0.0)),
            ]
            .into_iter()
            .map(|(m, p)| (m.to_owned(), p))
            .collect(),
            job_lease_secs: 30,
            job_workers: 2,
            workflow_workers: 64,
            workflow_max_active_runs: 1_000,
            report_min_interval_secs: 3_600,
            event_retention_days: 90,
            plugin_timeout_ms: 1_000,
            plugin_memory_mb: 64,
            plugin_log_keep: 10_000,
            allow_private_urls: AllowPrivate::default(),
            resolve: Vec::new(),
            webhook_retry_schedule: [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .map(std::time::Duration::from_secs)
                .to_vec(),
            webhook_disable_after: DisableAfter::Failing(std::time::Duration::from_secs(
                5 * 86_400,
            )),
        }
    }
}

/// The keys a `nova.toml` may hold: the environment names, lower-cased, without `NOVA_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    data_dir: Option<String>,
    master_key: Option<String>,
    cors_origins: Option<Vec<String>>,
    public_url: Option<String>,
    log_format: Option<String>,
    session_ttl_hours: Option<i64>,
    max_body_bytes: Option<usize>,
    bulk_rate_limit: Option<u32>,
    auth_rate_limit: Option<u32>,
    chat_rate_limit: Option<u32>,
    job_rate_limit: Option<u32>,
    llm_base_url: Option<String>,
    llm_model: Option<String>,
    llm_api_key: Option<String>,
    llm_timeout_secs: Option<u64>,
    stt_base_url: Option<String>,
    stt_model: Option<String>,
    stt_api_key: Option<String>,
    tts_base_url: Option<String>,
    tts_model: Option<String>,
    tts_api_key: Option<String>,
    espeak: Option<String>,
    max_audio_bytes: Option<usize>,
    model_prices: Option<String>,
    job_lease_secs: Option<i64>,
    job_workers: Option<u32>,
    workflow_workers: Option<u32>,
    workflow_max_active_runs: Option<i64>,
    report_min_interval_secs: Option<i64>,
    event_retention_days: Option<i64>,
    plugin_timeout_ms: Option<u64>,
    plugin_memory_mb: Option<u64>,
    plugin_log_keep: Option<u64>,
    allow_private_urls: Option<String>,
    resolve: Option<String>,
    webhook_retry_schedule: Option<String>,
    webhook_disable_after: Option<String>,
}

impl Config {
    /// Reads `nova.toml` (or the file `NOVA_CONFIG` names) and the process environment.
    pub fn load() -> anyhow::Result<Config> {
        let explicit = std::env::var("NOVA_CONFIG").ok();
        let path = PathBuf::from(explicit.clone().unwrap_or_else(|| "nova.toml".into()));
        let file = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(text)
        } else if explicit.is_some() {
            bail!("NOVA_CONFIG: {} does not exist", path.display());
        } else {
            None
        };
        Config::from_sources(file.as_deref(), &|key| std::env::var(key).ok())
    }

    /// Layers `file` (TOML text) and then `env` over the defaults.
    pub fn from_sources(
        file: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let file: FileConfig = match file {
            Some(text) => toml::from_str(text).context("nova.toml")?,
            None => FileConfig::default(),
        };
        let mut c = Config::default();
        let pick = |env_key: &str, file_value: Option<String>| env(env_key).or(file_value);

        if let Some(v) = pick("NOVA_BIND", file.bind) {
            c.bind = v.parse().with_context(|| {
                format!("NOVA_BIND: `{v}` is not a socket address like 127.0.0.1:8080")
            })?;
        }
        if let Some(v) = pick("DATABASE_URL", file.database_url) {
            if !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| v.starts_with(p))
            {
                bail!("DATABASE_URL: expected a sqlite:// or postgres:// URL");
            }
            c.database_url = Some(Secret(v));
        }
        if let Some(v) = pick("REDIS_URL", file.redis_url) {
            if !(v.starts_with("redis://") || v.starts_with("rediss://")) {
                bail!("REDIS_URL: expected a redis:// URL");
            }
            c.redis_url = Some(Secret(v));
        }
        if let Some(v) = pick("NOVA_DATA_DIR", file.data_dir) {
            if v.trim().is_empty() {
                bail!("NOVA_DATA_DIR: must not be empty");
            }
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = pick("NOVA_MASTER_KEY", file.master_key) {
            c.master_key = Some(Secret(parse_key(&v).context("NOVA_MASTER_KEY")?));
        }
        let origins = env("NOVA_CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .or(file.cors_origins);
        if let Some(origins) = origins {
            for o in &origins {
                if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                    bail!("NOVA_CORS_ORIGINS: `{o}` is not an origin like https://app.example.com");
                }
            }
            c.cors_origins = origins;
        }
        if let Some(v) = pick("NOVA_PUBLIC_URL", file.public_url) {
            let url = v.trim_end_matches('/');
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("NOVA_PUBLIC_URL: `{v}` is not a URL like https://nova.example.com");
            }
            c.public_url = Some(url.to_owned());
        }
        if let Some(v) = pick("NOVA_LOG_FORMAT", file.log_format) {
            c.log_format = match v.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => bail!("NOVA_LOG_FORMAT: expected `json` or `pretty`, got `{v}`"),
            };
        }
        c.session_ttl_hours = number(
            "NOVA_SESSION_TTL_HOURS",
            env("NOVA_SESSION_TTL_HOURS"),
            file.session_ttl_hours,
            c.session_ttl_hours,
            1..=24 * 365,
        )?;
        c.max_body_bytes = number(
            "NOVA_MAX_BODY_BYTES",
            env("NOVA_MAX_BODY_BYTES"),
            file.max_body_bytes,
            c.max_body_bytes,
            1024..=64 * 1024 * 1024,
        )?;
        c.bulk_rate_limit_per_minute = number(
            "NOVA_BULK_RATE_LIMIT",
            env("NOVA_BULK_RATE_LIMIT"),
            file.bulk_rate_limit,
            c.bulk_rate_limit_per_minute,
            1..=100_000,
        )?;
        for (key, file_value, target) in [
            (
                "NOVA_AUTH_RATE_LIMIT",
                file.auth_rate_limit,
                &mut c.auth_rate_limit_per_minute,
            ),
            (
                "NOVA_CHAT_RATE_LIMIT",
                file.chat_rate_limit,
                &mut c.chat_rate_limit_per_minute,
            ),
            (
                "NOVA_JOB_RATE_LIMIT",
                file.job_rate_limit,
                &mut c.job_rate_limit_per_minute,
            ),
        ] {
            *target = number(key, env(key), file_value, *target, 1..=1_000_000)?;
        }
        for (key, file_value, target) in [
            ("NOVA_LLM_BASE_URL", file.llm_base_url, &mut c.llm_base_url),
            ("NOVA_STT_BASE_URL", file.stt_base_url, &mut c.stt_base_url),
            ("NOVA_TTS_BASE_URL", file.tts_base_url, &mut c.tts_base_url),
        ] {
            if let Some(v) = pick(key, file_value).filter(|v| !v.is_empty()) {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    bail!("{key}: expected an http(s) URL like https://api.openai.com/v1");
                }
                *target = Some(v.trim_end_matches('/').to_owned());
            }
        }
        for (key, file_value, target) in [
            ("NOVA_LLM_MODEL", file.llm_model, &mut c.llm_model),
            ("NOVA_STT_MODEL", file.stt_model, &mut c.stt_model),
            ("NOVA_TTS_MODEL", file.tts_model, &mut c.tts_model),
        ] {
            if let Some(v) = pick(key, file_value) {
                if v.trim().is_empty() {
                    bail!("{key}: must not be empty");
                }
                *target = v.trim().to_owned();
            }
        }
        c.llm_api_key = pick("NOVA_LLM_API_KEY", file.llm_api_key).map(Secret);
        c.stt_api_key = pick("NOVA_STT_API_KEY", file.stt_api_key).map(Secret);
        c.tts_api_key = pick("NOVA_TTS_API_KEY", file.tts_api_key).map(Secret);
        c.llm_timeout_secs = number(
            "NOVA_LLM_TIMEOUT_SECS",
            env("NOVA_LLM_TIMEOUT_SECS"),
            file.llm_timeout_secs,
            c.llm_timeout_secs,
            1..=600,
        )?;
        c.max_audio_bytes = number(
            "NOVA_MAX_AUDIO_BYTES",
            env("NOVA_MAX_AUDIO_BYTES"),
            file.max_audio_bytes,
            c.max_audio_bytes,
            1024..=64 * 1024 * 1024,
        )?;
        if let Some(v) = pick("NOVA_MODEL_PRICES", file.model_prices) {
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry.split_once('=').and_then(|(model, prices)| {
                    let (prompt, completion) = prices.split_once('/')?;
                    let prompt: f64 = prompt.trim().parse().ok()?;
                    let completion: f64 = completion.trim().parse().ok()?;
                    Some((model.trim().to_owned(), (prompt, completion)))
                });
                let Some((model, price)) = parsed else {
                    bail!(
                        "NOVA_MODEL_PRICES: `{entry}` is not model=prompt/completion (dollars per million tokens)"
                    );
                };
                c.model_prices.insert(model, price);
            }
        }
        c.job_lease_secs = number(
            "NOVA_JOB_LEASE_SECS",
            env("NOVA_JOB_LEASE_SECS"),
            file.job_lease_secs,
            c.job_lease_secs,
            1..=3600,
        )?;
        c.job_workers = number(
            "NOVA_JOB_WORKERS",
            env("NOVA_JOB_WORKERS"),
            file.job_workers,
            c.job_workers,
            1..=64,
        )?;
        c.workflow_workers = number(
            "NOVA_WORKFLOW_WORKERS",
            env("NOVA_WORKFLOW_WORKERS"),
            file.workflow_workers,
            c.workflow_workers,
            1..=1024,
        )?;
        c.workflow_max_active_runs = number(
            "NOVA_WORKFLOW_MAX_ACTIVE_RUNS",
            env("NOVA_WORKFLOW_MAX_ACTIVE_RUNS"),
            file.workflow_max_active_runs,
            c.workflow_max_active_runs,
            1..=1_000_000,
        )?;
        c.report_min_interval_secs = number(
            "NOVA_REPORT_MIN_INTERVAL_SECS",
            env("NOVA_REPORT_MIN_INTERVAL_SECS"),
            file.report_min_interval_secs,
            c.report_min_interval_secs,
            1..=31_622_400,
        )?;
        c.event_retention_days = number(
            "NOVA_EVENT_RETENTION_DAYS",
            env("NOVA_EVENT_RETENTION_DAYS"),
            file.event_retention_days,
            c.event_retention_days,
            1..=3650,
        )?;
        c.plugin_timeout_ms = number(
            "NOVA_PLUGIN_TIMEOUT_MS",
            env("NOVA_PLUGIN_TIMEOUT_MS"),
            file.plugin_timeout_ms,
            c.plugin_timeout_ms,
            10..=60_000,
        )?;
        c.plugin_memory_mb = number(
            "NOVA_PLUGIN_MEMORY_MB",
            env("NOVA_PLUGIN_MEMORY_MB"),
            file.plugin_memory_mb,
            c.plugin_memory_mb,
            4..=4_096,
        )?;
        c.plugin_log_keep = number(
            "NOVA_PLUGIN_LOG_KEEP",
            env("NOVA_PLUGIN_LOG_KEEP"),
            file.plugin_log_keep,
            c.plugin_log_keep,
            1..=10_000_000,
        )?;
        if let Some(v) = pick("NOVA_ALLOW_PRIVATE_URLS", file.allow_private_urls) {
            c.allow_private_urls = AllowPrivate::parse(&v)
                .map_err(|e| anyhow::anyhow!("NOVA_ALLOW_PRIVATE_URLS: {e}"))?;
        }
        if let Some(v) = pick("NOVA_RESOLVE", file.resolve) {
            c.resolve = parse_resolve(&v).map_err(|e| anyhow::anyhow!("NOVA_RESOLVE: {e}"))?;
        }
        if let Some(v) = pick("NOVA_WEBHOOK_RETRY_SCHEDULE", file.webhook_retry_schedule) {
            c.webhook_retry_schedule = parse_retry_schedule(&v)
                .map_err(|e| anyhow::anyhow!("NOVA_WEBHOOK_RETRY_SCHEDULE: {e}"))?;
        }
        if let Some(v) = pick("NOVA_WEBHOOK_DISABLE_AFTER", file.webhook_disable_after) {
            c.webhook_disable_after = parse_disable_after(&v)
                .map_err(|e| anyhow::anyhow!("NOVA_WEBHOOK_DISABLE_AFTER: {e}"))?;
        }
        c.espeak_path = match pick("NOVA_ESPEAK", file.espeak) {
            Some(v) if v == "off" => None,
            Some(v) => Some(v),
            None => find_in_path("espeak-ng"),
        };
        Ok(c)
    }

    /// The database URL to open: the configured one, or the embedded file in the data dir.
    pub fn effective_database_url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(url) => Ok(url.0.clone()),
            None => crate::db::Db::sqlite_url_in(Path::new(&self.data_dir)),
        }
    }
}

fn number<T>(
    key: &str,
    env_value: Option<String>,
    file_value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let value = match env_value {
        Some(v) => v
            .trim()
            .parse::<T>()
            .map_err(|_| anyhow::anyhow!("{key}: `{v}` is not a number"))?,
        None => file_value.unwrap_or(default),
    };
    if !range.contains(&value) {
        bail!(
            "{key}: {value} is outside {}..={}",
            range.start(),
            range.end()
        );
    }
    Ok(value)
}

/// The full path of `program` if it is on `PATH`.
fn find_in_path(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .map(|p| p.display().to_string())
}

fn parse_key(v: &str) -> anyhow::Result<[u8; 32]> {
    let v = v.trim();
    let bytes = if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|_| anyhow::anyhow!("expected 64 hex digits or base64 of 32 bytes"))?
    };
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected exactly 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_wins_over_file() {
        let c = Config::from_sources(
            Some("bind = \"127.0.0.1:9000\"\nlog_format = \"json\""),
            &env_of(&[("NOVA_BIND", "0.0.0.0:7000")]),
        )
        .unwrap();
        assert_eq!(c.bind.port(), 7000);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (key, value) in [
            ("NOVA_BIND", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("NOVA_LOG_FORMAT", "xml"),
            ("NOVA_MASTER_KEY", "short"),
            ("NOVA_BULK_RATE_LIMIT", "0"),
            ("NOVA_CORS_ORIGINS", "example.com"),
            ("NOVA_WEBHOOK_RETRY_SCHEDULE", "5s,soon"),
            ("NOVA_WEBHOOK_DISABLE_AFTER", "0"),
        ] {
            let env = move |k: &str| (k == key).then(|| value.to_string());
            let err = Config::from_sources(None, &env).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{key}: {err:#}");
        }
    }

    #[test]
    fn webhook_schedule_and_disable_after_parse() {
        let c = Config::from_sources(
            None,
            &env_of(&[
                ("NOVA_WEBHOOK_RETRY_SCHEDULE", "1s, 500ms,2m"),
                ("NOVA_WEBHOOK_DISABLE_AFTER", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.webhook_retry_schedule,
            [1000, 500, 120_000].map(std::time::Duration::from_millis)
        );
        assert_eq!(c.webhook_disable_after, DisableAfter::Failures(3));
        assert_eq!(
            parse_disable_after("5d"),
            Ok(DisableAfter::Failing(std::time::Duration::from_secs(
                432_000
            )))
        );
        assert_eq!(Config::default().webhook_retry_schedule.len(), 7);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(Config::from_sources(Some("bnid = \"x\""), &|_| None).is_err());
    }

    #[test]
    fn master_key_accepts_hex_and_base64_and_is_not_printed() {
        let hex = "00".repeat(32);
        let c =
            Config::from_sources(None, &|k| (k == "NOVA_MASTER_KEY").then(|| hex.clone())).unwrap();
        assert!(!format!("{c:?}").contains(&hex));
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let c =
            Config::from_sources(None, &|k| (k == "NOVA_MASTER_KEY").then(|| b64.clone())).unwrap();
        assert_eq!(c.master_key.unwrap().0, [7u8; 32]);
    }
}
