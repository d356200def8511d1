//! What a report covers: its sections, its agents and its days. One composition serves a
//! one-off export (`POST /api/analytics/export`) and a scheduled report
//! (`/api/analytics/reports`); it is checked when asked for and stored with the export.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::metrics::{Period, TimeRange};
use crate::auth::AuthUser;
use crate::db::{Db, now};
use crate::error::{AppError, AppResult};
use crate::projects::queries as projects;

/// Agents one report may name.
pub const MAX_AGENTS: usize = 50;
/// The longest custom period, in days.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Per agent and per day: conversations, replies, success and error rates, response
    /// time, satisfaction.
    Performance,
    /// Sentiment, topics and intents of the users' messages.
    Conversations,
    /// The most referenced documents and the knowledge gaps of the report's workspace.
    Knowledge,
    /// Tokens and estimated cost per agent and day; the owner's API requests and webhook
    /// deliveries.
    Usage,
    /// Each agent's variants tested against its control.
    AbTests,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Performance => "Performance",
            Section::Conversations => "Conversations",
            Section::Knowledge => "Knowledge",
            Section::Usage => "Usage",
            Section::AbTests => "A/B tests",
        }
    }
}

/// The days a report covers: the last N days up to the day it runs, or fixed dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Days {
    Last { time_range: TimeRange },
    Between { from: NaiveDate, to: NaiveDate },
}

impl Days {
    pub fn period(self) -> Period {
        match self {
            Days::Last { time_range } => time_range.period(),
            Days::Between { from, to } => Period { from, to },
        }
    }

    /// `7d`, `30d`, `90d`, or `from..to`.
    pub fn label(self) -> String {
        match self {
            Days::Last { time_range } => time_range.as_str().to_owned(),
            Days::Between { from, to } => format!("{from}..{to}"),
        }
    }
}

/// A checked composition, as stored with an export or a scheduled report.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Composition {
    pub sections: Vec<Section>,
    /// Empty: every agent the owner sees when the report runs.
    pub agent_ids: Vec<Uuid>,
    pub days: Days,
}

impl Default for Composition {
    /// The report before it could be composed: performance of every agent over 30 days.
    fn default() -> Self {
        Composition {
            sections: vec![Section::Performance],
            agent_ids: Vec::new(),
            days: Days::Last {
                time_range: TimeRange::default(),
            },
        }
    }
}

/// The composition fields of a request, as given.
pub struct Asked {
    pub sections: Option<Vec<Section>>,
    pub agent_ids: Option<Vec<Uuid>>,
    pub time_range: Option<TimeRange>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Checks what was asked: sections without repeats, agents the caller sees, and one way of
/// giving the days.
pub async fn compose(db: &Db, auth: &AuthUser, asked: Asked) -> AppResult<Composition> {
    let sections = match asked.sections {
        None => vec![Section::Performance],
        Some(list) if list.is_empty() => {
            return Err(AppError::invalid("sections", "name at least one section"));
        }
        Some(list) => {
            let mut unique = Vec::with_capacity(list.len());
            for section in list {
                if !unique.contains(&section) {
                    unique.push(section);
                }
            }
            unique
        }
    };
    let mut agent_ids = asked.agent_ids.unwrap_or_default();
    if agent_ids.len() > MAX_AGENTS {
        return Err(AppError::invalid(
            "agent_ids",
            format!("name at most {MAX_AGENTS} agents (or none for all)"),
        ));
    }
    agent_ids.sort();
    agent_ids.dedup();
    for id in &agent_ids {
        // A 404 for an agent the caller does not see, as everywhere else.
        projects::load(db, auth.id, *id).await?;
    }
    let days = days(asked.time_range, asked.from, asked.to)?;
    Ok(Composition {
        sections,
        agent_ids,
        days,
    })
}

fn days(
    time_range: Option<TimeRange>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> AppResult<Days> {
    let today = now().date_naive();
    match (time_range, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(AppError::invalid(
            "time_range",
            "give either `time_range` or `from`/`to`, not both",
        )),
        (time_range, None, None) => Ok(Days::Last {
            time_range: time_range.unwrap_or_default(),
        }),
        (None, None, Some(_)) => Err(AppError::invalid(
            "from",
            "a period with `to` needs its `from`",
        )),
        (None, Some(from), to) => {
            let to = to.unwrap_or(today);
            if from > to {
                return Err(AppError::invalid("from", "must not be after `to`"));
            }
            if to > today {
                return Err(AppError::invalid("to", "must not be after today (UTC)"));
            }
            if to - from >= Duration::days(MAX_DAYS) {
                return Err(AppError::invalid(
                    "from",
                    format!("a period spans at most {MAX_DAYS} days"),
                ));
            }
            Ok(Days::Between { from, to })
        }
    }
}
