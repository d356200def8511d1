//! The API, through HTTP, on SQLite and (with `NOVA_TEST_POSTGRES_URL`) PostgreSQL.

mod helpers;

mod analytics;
mod auth;
mod automations;
mod bulk;
mod chat;
mod cli;
mod collaboration;
mod knowledge;
mod layers;
mod outbound;
mod permissions;
mod platform;
mod plugins;
mod projects;
mod realtime;
mod reports;
mod resilience;
mod team;
mod user;
mod voice;
mod webhooks;
mod workflow_chat;
mod workflows;
