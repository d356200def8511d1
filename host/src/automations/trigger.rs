//! What a rule listens for and when it fires: the seed's three triggers over chat messages,
//! and `event` over any type of the catalogue with conditions over its data. Evaluation is
//! pure, so the consumer and the dry run (`…/test`) share it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::{AppError, AppResult, FieldError};
use crate::infra::template::lookup;

/// The event type the seed's three triggers read.
pub const MESSAGE_CREATED: &str = "chat.message.created";
/// The most keywords a rule may hold, and their length.
const MAX_KEYWORDS: usize = 100;
const MAX_KEYWORD_CHARS: usize = 100;
const MAX_CONDITIONS: usize = 50;

/// A rule's trigger as written: `{type, conditions}`, and `event_type` for `event`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `keyword_detected`, `sentiment_negative`, `response_time_high` or `event`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `event` triggers: the type of the catalogue they listen to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// keyword_detected: `{keywords: [...], match: "any"|"all", role: "user"|"agent"|"any"}`;
    /// sentiment_negative: `{threshold: -0.3}`; response_time_high: `{threshold_seconds: 5}`;
    /// event: `{all: [cond], any: [cond]}` with cond `{field, op, value}` (`field` a path in
    /// the event's data; `op` eq, ne, gt, gte, lt, lte, contains, exists).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub conditions: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// A trigger checked and ready to evaluate.
#[derive(Debug, Clone)]
pub enum Checked {
    Keywords {
        /// Each keyword as its lower-cased words.
        keywords: Vec<Vec<String>>,
        all: bool,
        role: Option<String>,
    },
    Sentiment {
        threshold: f64,
    },
    ResponseTime {
        threshold_seconds: f64,
    },
    Event {
        event_type: String,
        all: Vec<Condition>,
        any: Vec<Condition>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A path in the event's data, e.g. `status` or `session.priority`.
    pub field: String,
    /// eq, ne, gt, gte, lt, lte, contains, exists.
    pub op: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Value,
}

const OPS: &[&str] = &["eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists"];

/// One condition's outcome, for the dry run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConditionResult {
    /// What was checked, in words.
    pub condition: String,
    pub matched: bool,
    /// The value found in the event, when there is one.
    #[schema(value_type = Option<Object>)]
    pub actual: Option<Value>,
}

/// Whether the trigger fired, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Evaluation {
    pub matched: bool,
    pub conditions: Vec<ConditionResult>,
}

fn bad(field: &str, message: impl Into<String>) -> AppError {
    AppError::invalid(&format!("trigger/{field}"), message)
}

impl Trigger {
    /// The trigger checked: known type, well-formed conditions (422 naming the field).
    pub fn check(&self) -> AppResult<Checked> {
        let c = self
            .conditions
            .as_object()
            .ok_or_else(|| bad("conditions", "must be an object"))?;
        if self.kind != "event" && self.event_type.is_some() {
            return Err(bad("event_type", "is only for `event` triggers"));
        }
        let known = |keys: &[&str]| -> AppResult<()> {
            match c.keys().find(|k| !keys.contains(&k.as_str())) {
                Some(k) => Err(bad(
                    &format!("conditions/{k}"),
                    "is not a condition of this trigger",
                )),
                None => Ok(()),
            }
        };
        match self.kind.as_str() {
            "keyword_detected" => {
                known(&["keywords", "match", "role"])?;
                let keywords = keywords_of(c)?;
                let all = match c.get("match") {
                    None => false,
                    Some(Value::String(m)) if m == "any" => false,
                    Some(Value::String(m)) if m == "all" => true,
                    Some(_) => return Err(bad("conditions/match", "must be `any` or `all`")),
                };
                let role = role_of(c)?;
                Ok(Checked::Keywords {
                    keywords,
                    all,
                    role,
                })
            }
            "sentiment_negative" => {
                known(&["threshold"])?;
                let threshold = number(c, "threshold", -0.3)?;
                if !(-1.0..=1.0).contains(&threshold) {
                    return Err(bad("conditions/threshold", "must be between -1 and 1"));
                }
                Ok(Checked::Sentiment { threshold })
            }
            "response_time_high" => {
                known(&["threshold_seconds"])?;
                let threshold_seconds = number(c, "threshold_seconds", 5.0)?;
                if !(0.0..=3600.0).contains(&threshold_seconds) {
                    return Err(bad(
                        "conditions/threshold_seconds",
                        "must be between 0 and 3600",
                    ));
                }
                Ok(Checked::ResponseTime { threshold_seconds })
            }
            "event" => {
                known(&["all", "any"])?;
                let event_type = self
                    .event_type
                    .clone()
                    .ok_or_else(|| bad("event_type", "is required for `event` triggers"))?;
                if crate::events::catalogue::find(&event_type).is_none() {
                    return Err(bad(
                        "event_type",
                        format!(
                            "`{event_type}` is not an event type of the catalogue (GET /api/events/types)"
                        ),
                    ));
                }
                Ok(Checked::Event {
                    event_type,
                    all: conditions_of(c, "all")?,
                    any: conditions_of(c, "any")?,
                })
            }
            other => Err(bad(
                "type",
                format!(
                    "`{other}` is not keyword_detected, sentiment_negative, response_time_high or event"
                ),
            )),
        }
    }
}

fn keywords_of(c: &Map<String, Value>) -> AppResult<Vec<Vec<String>>> {
    let list = c
        .get("keywords")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            bad(
                "conditions/keywords",
                "must be a list of 1 or more keywords",
            )
        })?;
    if list.len() > MAX_KEYWORDS {
        return Err(bad(
            "conditions/keywords",
            format!("holds at most {MAX_KEYWORDS} keywords"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, k)| {
            let words = k.as_str().map(words).unwrap_or_default();
            if words.is_empty()
                || k.as_str()
                    .is_some_and(|s| s.chars().count() > MAX_KEYWORD_CHARS)
            {
                return Err(bad(
                    &format!("conditions/keywords/{i}"),
                    format!("must be a word or phrase of at most {MAX_KEYWORD_CHARS} characters"),
                ));
            }
            Ok(words)
        })
        .collect()
}

fn role_of(c: &Map<String, Value>) -> AppResult<Option<String>> {
    match c.get("role") {
        None => Ok(None),
        Some(Value::String(r)) if r == "any" => Ok(None),
        Some(Value::String(r)) if r == "user" || r == "agent" => Ok(Some(r.clone())),
        Some(_) => Err(bad("conditions/role", "must be `user`, `agent` or `any`")),
    }
}

fn number(c: &Map<String, Value>, key: &str, default: f64) -> AppResult<f64> {
    match c.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| bad(&format!("conditions/{key}"), "must be a number")),
    }
}

fn conditions_of(c: &Map<String, Value>, key: &str) -> AppResult<Vec<Condition>> {
    let Some(list) = c.get(key) else {
        return Ok(Vec::new());
    };
    let list: Vec<Condition> = serde_json::from_value(list.clone()).map_err(|e| {
        bad(
            &format!("conditions/{key}"),
            format!("must be a list of {{field, op, value}}: {e}"),
        )
    })?;
    if list.len() > MAX_CONDITIONS {
        return Err(bad(
            &format!("conditions/{key}"),
            format!("holds at most {MAX_CONDITIONS} conditions"),
        ));
    }
    let mut errors = Vec::new();
    for (i, cond) in list.iter().enumerate() {
        if !OPS.contains(&cond.op.as_str()) {
            errors.push(FieldError::new(
                format!("trigger/conditions/{key}/{i}/op"),
                format!("must be one of {}", OPS.join(", ")),
            ));
        }
        if cond.field.trim().is_empty() || cond.field.len() > 200 {
            errors.push(FieldError::new(
                format!("trigger/conditions/{key}/{i}/field"),
                "must be a path in the event's data, e.g. `status`",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::fields(errors));
    }
    Ok(list)
}

/// The lower-cased words of a text (letters, digits and inner apostrophes).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

impl Checked {
    /// The event type it listens to.
    pub fn event_type(&self) -> &str {
        match self {
            Checked::Event { event_type, .. } => event_type,
            _ => MESSAGE_CREATED,
        }
    }

    /// The first word of each keyword: the index a message finds keyword rules by.
    pub fn index_words(&self) -> Vec<String> {
        match self {
            Checked::Keywords { keywords, .. } => {
                let mut first: Vec<String> =
                    keywords.iter().filter_map(|k| k.first().cloned()).collect();
                first.sort();
                first.dedup();
                first
            }
            _ => Vec::new(),
        }
    }

    /// Whether an event of `event_type` with `data` fires the trigger, and why.
    pub fn evaluate(&self, event_type: &str, data: &Value) -> Evaluation {
        if event_type != self.event_type() {
            return Evaluation {
                matched: false,
                conditions: vec![ConditionResult {
                    condition: format!("the event is a {}", self.event_type()),
                    matched: false,
                    actual: Some(json!(event_type)),
                }],
            };
        }
        let role = data.get("role").and_then(Value::as_str).unwrap_or_default();
        let check = |condition: String, matched: bool, actual: Option<Value>| ConditionResult {
            condition,
            matched,
            actual,
        };
        let conditions = match self {
            Checked::Keywords {
                keywords,
                all,
                role: wanted,
            } => {
                let text = words(
                    data.get("content")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                let mut results: Vec<ConditionResult> = Vec::new();
                if let Some(wanted) = wanted {
                    results.push(check(
                        format!("role is {wanted}"),
                        role == wanted,
                        Some(json!(role)),
                    ));
                }
                let found: Vec<bool> = keywords.iter().map(|k| contains_phrase(&text, k)).collect();
                let hits: Vec<String> = keywords
                    .iter()
                    .zip(&found)
                    .filter(|(_, f)| **f)
                    .map(|(k, _)| k.join(" "))
                    .collect();
                let matched = if *all {
                    found.iter().all(|f| *f)
                } else {
                    found.iter().any(|f| *f)
                };
                results.push(check(
                    format!(
                        "the content holds {} of the keywords",
                        if *all { "all" } else { "any" }
                    ),
                    matched,
                    Some(json!(hits)),
                ));
                results
            }
            Checked::Sentiment { threshold } => {
                let sentiment = data.get("sentiment").and_then(Value::as_f64);
                vec![
                    check("role is user".into(), role == "user", Some(json!(role))),
                    check(
                        format!("sentiment ≤ {threshold}"),
                        sentiment.is_some_and(|s| s <= *threshold),
                        sentiment.map(|s| json!(s)),
                    ),
                ]
            }
            Checked::ResponseTime { threshold_seconds } => {
                let latency = data.get("latency_seconds").and_then(Value::as_f64);
                vec![
                    check("role is agent".into(), role == "agent", Some(json!(role))),
                    check(
                        format!("latency > {threshold_seconds} s"),
                        latency.is_some_and(|l| l > *threshold_seconds),
                        latency.map(|l| json!(l)),
                    ),
                ]
            }
            Checked::Event { all, any, .. } => {
                let mut results: Vec<ConditionResult> =
                    all.iter().map(|c| condition(c, data)).collect();
                if !any.is_empty() {
                    let each: Vec<ConditionResult> =
                        any.iter().map(|c| condition(c, data)).collect();
                    let matched = each.iter().any(|r| r.matched);
                    results.push(check(
                        format!(
                            "any of: {}",
                            each.iter()
                                .map(|r| r.condition.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                        matched,
                        None,
                    ));
                }
                results
            }
        };
        Evaluation {
            matched: conditions.iter().all(|c| c.matched),
            conditions,
        }
    }
}

/// Whether `phrase` (words) appears in `text` (words) as whole, consecutive words.
pub fn contains_phrase(text: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase)
}

fn condition(c: &Condition, data: &Value) -> ConditionResult {
    let actual = lookup(data, c.field.trim()).cloned();
    let ordered =
        |f: fn(f64, f64) -> bool| match (actual.as_ref().and_then(Value::as_f64), c.value.as_f64())
        {
            (Some(a), Some(b)) => f(a, b),
            _ => false,
        };
    let matched = match c.op.as_str() {
        "eq" => actual.as_ref() == Some(&c.value),
        "ne" => actual.as_ref() != Some(&c.value),
        "gt" => ordered(|a, b| a > b),
        "gte" => ordered(|a, b| a >= b),
        "lt" => ordered(|a, b| a < b),
        "lte" => ordered(|a, b| a <= b),
        "contains" => match (&actual, &c.value) {
            (Some(Value::String(a)), Value::String(b)) => {
                a.to_lowercase().contains(&b.to_lowercase())
            }
            (Some(Value::Array(items)), v) => items.contains(v),
            _ => false,
        },
        "exists" => actual.as_ref().is_some_and(|v| !v.is_null()),
        _ => false,
    };
    ConditionResult {
        condition: format!("{} {} {}", c.field, c.op, c.value),
        matched,
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(v: Value) -> Checked {
        serde_json::from_value::<Trigger>(v)
            .expect("trigger")
            .check()
            .expect("valid")
    }

    #[test]
    fn keywords_match_whole_words_in_any_case() {
        let t = trigger(
            json!({"type": "keyword_detected", "conditions": {"keywords": ["refund", "cancel order"], "role": "user"}}),
        );
        let fires = |content: &str, role: &str| {
            t.evaluate(MESSAGE_CREATED, &json!({"content": content, "role": role}))
                .matched
        };
        assert!(fires("I want a REFUND now", "user"));
        assert!(fires("please Cancel  order 42", "user"));
        assert!(!fires("refunds are slow", "user"));
        assert!(!fires("cancel my order", "user"));
        assert!(!fires("refund", "agent"));
        let all = trigger(
            json!({"type": "keyword_detected", "conditions": {"keywords": ["refund", "angry"], "match": "all"}}),
        );
        assert!(
            !all.evaluate(MESSAGE_CREATED, &json!({"content": "refund"}))
                .matched
        );
        assert!(
            all.evaluate(MESSAGE_CREATED, &json!({"content": "angry: refund!"}))
                .matched
        );
    }

    #[test]
    fn event_conditions_compare_the_data() {
        let t = trigger(
            json!({"type": "event", "event_type": "knowledge.upload.completed",
            "conditions": {"all": [{"field": "failed", "op": "gt", "value": 0}],
                           "any": [{"field": "files", "op": "gte", "value": 10}, {"field": "indexed", "op": "eq", "value": 0}]}}),
        );
        assert!(
            t.evaluate(
                "knowledge.upload.completed",
                &json!({"failed": 1, "files": 2, "indexed": 0})
            )
            .matched
        );
        assert!(
            !t.evaluate(
                "knowledge.upload.completed",
                &json!({"failed": 1, "files": 2, "indexed": 1})
            )
            .matched
        );
        assert!(
            !t.evaluate("agent.error", &json!({"failed": 1, "files": 20}))
                .matched
        );
    }

    #[test]
    fn bad_triggers_name_the_field() {
        let err = |v: Value| match serde_json::from_value::<Trigger>(v).expect("shape").check() {
            Err(AppError::Unprocessable { errors, .. }) => errors[0].field.clone(),
            other => panic!("expected a 422, got {other:?}"),
        };
        assert_eq!(
            err(json!({"type": "keyword_detected", "conditions": {"keywords": []}})),
            "trigger/conditions/keywords"
        );
        assert_eq!(
            err(json!({"type": "sentiment_negative", "conditions": {"threshold": "low"}})),
            "trigger/conditions/threshold"
        );
        assert_eq!(
            err(json!({"type": "event", "event_type": "no.such"})),
            "trigger/event_type"
        );
        assert_eq!(
            err(
                json!({"type": "event", "event_type": "agent.error", "conditions": {"all": [{"field": "x", "op": "like"}]}})
            ),
            "trigger/conditions/all/0/op"
        );
        assert_eq!(err(json!({"type": "sometimes"})), "trigger/type");
    }
}
