//! Authentication: random bearer tokens stored as SHA-256 hashes, and the `AuthUser`
//! extractor every handler uses. Register, login and logout live in `user::auth`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use uuid::Uuid;

use crate::args;
use crate::db::{Tx, new_id};
use crate::error::{AppError, AppResult};
use crate::infra::hashing::hash_bytes;
use crate::state::AppState;

/// The caller, authenticated by `Authorization: Bearer <token>` (a login token or API key).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub is_instance_admin: bool,
    pub token_id: Uuid,
    /// Whether the token is an API key (not a login session).
    pub api_key: bool,
}

impl AuthUser {
    /// 403 unless the caller is an instance admin.
    pub fn require_instance_admin(&self) -> AppResult<()> {
        if self.is_instance_admin {
            Ok(())
        } else {
            Err(AppError::forbidden("this needs an instance admin"))
        }
    }
}

/// The caller, required to be an instance admin: as an extractor, the check comes before the
/// request body is read (a non-admin's upload is a 403, whatever its body).
#[derive(Debug, Clone)]
pub struct InstanceAdmin(pub AuthUser);

impl FromRequestParts<AppState> for InstanceAdmin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = authenticate_parts(state, parts).await?;
        caller.require_instance_admin()?;
        Ok(InstanceAdmin(caller))
    }
}

#[derive(sqlx::FromRow)]
struct TokenOwner {
    token_id: Uuid,
    user_id: Uuid,
    is_instance_admin: bool,
    kind: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        authenticate_parts(state, parts).await
    }
}

/// Authenticates a request and notes the caller for the API usage counts.
async fn authenticate_parts(state: &AppState, parts: &Parts) -> Result<AuthUser, AppError> {
    let caller = authenticate(state, &parts.headers).await?;
    if let Some(slot) = parts
        .extensions
        .get::<crate::infra::api_usage::CallerSlot>()
    {
        slot.fill(caller.id, caller.token_id, caller.api_key);
    }
    Ok(caller)
}

/// The user whose bearer token the headers carry.
pub async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<AuthUser, AppError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(AppError::Unauthorized(
            "send `Authorization: Bearer <token>`",
        ))?;
    let token = header
        .to_str()
        .ok()
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|h| {
            h.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &h[7..])
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AppError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ))?;
    let owner: Option<TokenOwner> = state
        .db
        .fetch_optional(
            "SELECT t.id AS token_id, u.id AS user_id, u.is_instance_admin, t.kind
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
            args![hash_token(token), crate::db::now()],
        )
        .await?;
    let owner = owner.ok_or(AppError::Unauthorized(
        "the token is unknown, revoked or expired",
    ))?;
    Ok(AuthUser {
        id: owner.user_id,
        is_instance_admin: owner.is_instance_admin,
        token_id: owner.token_id,
        api_key: owner.kind == "api_key",
    })
}

/// Whether the token `token_id` is still valid (neither revoked nor expired).
pub async fn token_is_live(db: &crate::db::Db, token_id: Uuid) -> AppResult<bool> {
    let live: Option<(Uuid,)> = db
        .fetch_optional(
            "SELECT id FROM api_tokens WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            args![token_id, crate::db::now()],
        )
        .await?;
    Ok(live.is_some())
}

/// A new random token: `nova_` and 32 random bytes, URL-safe.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("nova_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens are stored only as this hash; the token itself is shown once.
pub fn hash_token(token: &str) -> String {
    hash_bytes(token.as_bytes())
}

/// Stores a new token for `user_id` and returns it (the only time it is visible).
pub async fn issue_token(
    tx: &mut Tx,
    user_id: Uuid,
    kind: &str,
    name: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> AppResult<(Uuid, String)> {
    let token = generate_token();
    let id = new_id();
    tx.execute(
        "INSERT INTO api_tokens (id, user_id, kind, name, token_hash, prefix, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            id,
            user_id,
            kind,
            name,
            hash_token(&token),
            token[..12].to_owned(),
            crate::db::now(),
            expires_at
        ],
    )
    .await?;
    Ok((id, token))
}
