//! `nova seed-demo`: realistic agents, sessions, messages and ratings over past days, so a
//! new workspace shows a living dashboard at once. The benchmark uses the same generator.

use chrono::{Duration, Utc};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use uuid::Uuid;

use super::rollup::{self, Reading};
use crate::args;
use crate::db::{Arg, Db, new_id, now};
use crate::error::{AppError, AppResult};
use crate::projects::queries::{self as projects, NewProjectRecord};
use crate::state::AppState;

const OPENERS: &[&str] = &[
    "Hello",
    "Hi there, I need some help",
    "How do I reset my password?",
    "I was charged twice on my last invoice, this is unacceptable",
    "Where is my order? It was supposed to arrive yesterday",
    "Can you explain the difference between the pro and business plans?",
    "The app crashes every time I open the settings page",
    "Please cancel my subscription",
    "I'd like to upgrade to the annual plan",
    "How can I change the email address on my account?",
    "Do you offer a discount for non-profits?",
    "My package arrived damaged, what should I do?",
    "Is there an API for exporting reports?",
    "Thanks, that was really helpful!",
    "The delivery tracking link doesn't work",
    "How long does a refund take?",
    "Can I add more users to my plan?",
    "Login fails with an error after the update",
];

const REPLIES: &[&str] = &[
    "I can help with that. Here are the steps: open Settings, choose Security, then select Reset password.",
    "I'm sorry about the double charge. I've flagged the invoice and a refund will be issued within 5 business days.",
    "Your order is on its way; the latest tracking update shows it at the local depot.",
    "The business plan adds single sign-on, audit logs and priority support on top of everything in pro.",
    "Thanks for reporting this. Could you tell me your app version and device so I can check the known issues?",
    "You can change the email address under Account → Profile. You'll get a confirmation link.",
    "Yes, we offer 30% off for registered non-profits. I can send you the application form.",
    "Glad I could help! Is there anything else?",
];

/// Agent names, templates and how well each performs (success odds, latency scale).
const AGENTS: &[(&str, &str, f64, f64)] = &[
    ("Support Assistant", "support-tier1", 0.9, 1.0),
    ("Returns Desk", "support-returns", 0.8, 1.4),
    ("Sales Qualifier", "sales-qualifier", 0.85, 0.8),
    ("HR Helper", "hr-policy", 0.75, 1.8),
    ("IT Helpdesk", "general-it-helpdesk", 0.7, 2.5),
];

/// Seeds the personal workspace of the user with `email`.
pub async fn seed(state: &AppState, email: &str, days: i64) -> AppResult<String> {
    if !(1..=365).contains(&days) {
        return Err(AppError::invalid("days", "must be 1 to 365"));
    }
    let user: Option<(Uuid,)> = state
        .db
        .fetch_optional(
            "SELECT id FROM users WHERE email = $1",
            args![email.trim().to_lowercase()],
        )
        .await?;
    let (user_id,) = user.ok_or(AppError::NotFound("user with this email"))?;
    let workspace_id = crate::access::personal_workspace(&state.db, user_id)
        .await?
        .ok_or(AppError::NotFound("personal workspace"))?;
    let mut tx = state.db.begin().await?;
    let mut agents = Vec::new();
    for (name, template, _, _) in AGENTS {
        let record = NewProjectRecord {
            workspace_id,
            owner_id: user_id,
            name: (*name).to_owned(),
            description: format!("Demo agent: {name}"),
            tags: vec!["demo".to_owned()],
            status: "active".to_owned(),
            settings: serde_json::Map::new(),
            system_prompt: String::new(),
            model_config: serde_json::Map::new(),
            template_id: Some((*template).to_owned()),
        };
        agents.push(projects::insert(&mut tx, record).await?);
    }
    tx.commit().await?;
    let messages = generate(
        &state.db,
        workspace_id,
        user_id,
        &agents,
        days,
        40 * days * agents.len() as i64,
        7,
    )
    .await?;
    let read = rollup::recompute(&state.db).await?;
    state.cache.bump().await;
    Ok(format!(
        "seeded {} agents and {messages} messages over {days} days into {email}'s workspace ({read} messages in the rollups)",
        agents.len()
    ))
}

/// Writes about `messages` raw messages (in sessions of 1–4 exchanges) for `agents` over the
/// last `days` days, with ratings, varied quality per agent and mostly closed sessions.
/// The rollups are not touched: run [`rollup::recompute`] after. Returns the messages written.
pub async fn generate(
    db: &Db,
    workspace_id: Uuid,
    user_id: Uuid,
    agents: &[Uuid],
    days: i64,
    messages: i64,
    seed: u64,
) -> AppResult<i64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let today = now();
    let mut written = 0i64;
    let mut tx = db.begin().await?;
    let mut in_tx = 0;
    while written < messages {
        let agent_index = rng.gen_range(0..agents.len());
        let project_id = agents[agent_index];
        let (_, _, quality, slowness) = AGENTS[agent_index % AGENTS.len()];
        let back = rng.gen_range(0..days);
        let started = today - Duration::days(back) - Duration::seconds(rng.gen_range(0..80_000));
        let started = started.min(today - Duration::seconds(60));
        let session_id = new_id();
        let exchanges = rng.gen_range(1..=4i64);
        let status = if back == 0 && rng.gen_bool(0.5) {
            "active"
        } else {
            "closed"
        };
        let mut rows: Vec<Arg> = Vec::new();
        let mut values = Vec::new();
        let mut at = started;
        for seq in 0..exchanges * 2 {
            let (role, content, status_of, latency, rating, tokens) = if seq % 2 == 0 {
                (
                    "user",
                    (*OPENERS.choose(&mut rng).unwrap_or(&"Hello")).to_owned(),
                    "ok",
                    None::<i64>,
                    None::<i64>,
                    (0i64, 0i64),
                )
            } else {
                let roll: f64 = rng.gen_range(0.0..1.0);
                let status = if roll < quality {
                    "ok"
                } else if roll < quality + (1.0 - quality) * 0.7 {
                    "unanswered"
                } else {
                    "error"
                };
                let latency = (rng.gen_range(300.0..2_500.0) * slowness) as i64;
                let rating = (status == "ok" && rng.gen_bool(0.4)).then(|| {
                    if rng.gen_bool(quality) {
                        rng.gen_range(4..=5)
                    } else {
                        rng.gen_range(1..=3)
                    }
                });
                let reply = (*REPLIES.choose(&mut rng).unwrap_or(&"OK")).to_owned();
                (
                    "agent",
                    reply,
                    status,
                    Some(latency),
                    rating,
                    (rng.gen_range(200..900), rng.gen_range(40..300)),
                )
            };
            at += Duration::seconds(rng.gen_range(5..90));
            let reading = (role == "user").then(|| Reading::of(&content));
            let base = rows.len();
            rows.extend([
                Arg::from(new_id()),
                session_id.into(),
                (seq + 1).into(),
                role.into(),
                (role == "user").then_some(user_id).into(),
                content.into(),
                tokens.0.into(),
                tokens.1.into(),
                latency.into(),
                status_of.into(),
                rating.into(),
                reading.as_ref().map(|r| r.sentiment).into(),
                reading.as_ref().map(|r| r.intent.to_owned()).into(),
                (role == "agent").then_some("gpt-4o-mini").into(),
                at.with_timezone(&Utc).into(),
            ]);
            values.push(format!(
                "({})",
                (1..=15)
                    .map(|i| format!("${}", base + i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        tx.execute(
            "INSERT INTO chat_sessions (id, workspace_id, user_id, agent_id, title, status, priority,
                config_version, variant, template_id, last_seq, last_message_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'normal', 1, NULL, NULL, $7, $8, $9, $8)",
            args![session_id, workspace_id, user_id, project_id, "Demo conversation", status, exchanges * 2, at, started],
        )
        .await?;
        tx.execute(
            "INSERT INTO chat_participants (session_id, user_id, last_read_seq, joined_at) VALUES ($1, $2, $3, $4)",
            args![session_id, user_id, exchanges * 2, started],
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO chat_messages (id, session_id, seq, role, author_id, content, prompt_tokens,
                    completion_tokens, latency_ms, status, rating, sentiment, intent, model, created_at)
                 VALUES {}",
                values.join(", ")
            ),
            rows,
        )
        .await?;
        written += exchanges * 2;
        in_tx += exchanges * 2;
        if in_tx >= 20_000 {
            tx.commit().await?;
            tx = db.begin().await?;
            in_tx = 0;
        }
    }
    tx.commit().await?;
    Ok(written)
}
