//! Authentication: argon2id passwords, random bearer tokens stored as SHA-256 hashes,
//! the `AuthUser` extractor, and `/api/auth/*`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::{Json, extract::State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::db::{Tx, is_unique_violation, new_id};
use crate::error::{AppError, AppJson, AppResult};
use crate::state::AppState;
use crate::user::UserView;

/// The caller, authenticated by `Authorization: Bearer <token>` (a login token or API key).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub is_instance_admin: bool,
    pub token_id: Uuid,
}

#[derive(sqlx::FromRow)]
struct TokenOwner {
    token_id: Uuid,
    user_id: Uuid,
    is_instance_admin: bool,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        authenticate(state, &parts.headers).await
    }
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
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AppError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ))?;
    let owner: Option<TokenOwner> = state
        .db
        .fetch_optional(
            "SELECT t.id AS token_id, u.id AS user_id, u.is_instance_admin
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
    })
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

/// The SHA-256 of bytes, in hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hashes a password with argon2id off the async runtime.
pub async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(AppError::from)
}

/// Checks a password against a stored hash off the async runtime. With no stored hash it
/// still spends the same work, so that unknown emails cannot be told apart by timing.
async fn verify_password(password: String, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let fallback = DUMMY_HASH.get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"not a password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| fallback.clone());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && ok
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    /// 8 to 1024 characters.
    pub password: String,
    /// Display name; defaults to the part of the email before `@`.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub user: UserView,
    /// The bearer token; send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

pub fn normalize_email(email: &str) -> AppResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(AppError::invalid("email", "is not an email address"))
    }
}

/// Registers a user with a personal workspace; the first user becomes an instance admin.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, body = Session), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<(StatusCode, Json<Session>)> {
    let email = normalize_email(&req.email)?;
    if !(8..=1024).contains(&req.password.chars().count()) {
        return Err(AppError::invalid(
            "password",
            "must be 8 to 1024 characters",
        ));
    }
    let name = match req.name.as_deref().map(str::trim) {
        Some("") => return Err(AppError::invalid("name", "must not be empty")),
        Some(n) if n.chars().count() > 100 => {
            return Err(AppError::invalid("name", "must be at most 100 characters"));
        }
        Some(n) => n.to_owned(),
        None => email.split('@').next().unwrap_or_default().to_owned(),
    };
    let password_hash = hash_password(req.password).await?;
    let now = crate::db::now();
    let mut tx = state.db.begin().await?;
    let first: i64 = tx.scalar("SELECT COUNT(*) FROM users", args![]).await?;
    let user_id = create_user(&mut tx, &email, &name, password_hash, first == 0).await?;
    let expires_at = now + Duration::hours(state.config.session_ttl_hours);
    let (_, token) = issue_token(&mut tx, user_id, "session", None, Some(expires_at)).await?;
    tx.commit().await?;
    let user = crate::user::load_user(&state.db, user_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Session {
            user,
            token,
            expires_at,
        }),
    ))
}

/// Inserts a user and their personal workspace; 409 when the email is taken.
async fn create_user(
    tx: &mut Tx,
    email: &str,
    name: &str,
    password_hash: String,
    is_instance_admin: bool,
) -> AppResult<Uuid> {
    let user_id = new_id();
    let now = crate::db::now();
    let inserted = tx
        .execute(
            "INSERT INTO users (id, email, name, password_hash, is_instance_admin, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            args![user_id, email, name, password_hash, is_instance_admin, now],
        )
        .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(AppError::Conflict(
                "an account with this email already exists".into(),
            ));
        }
        other => other?,
    };
    crate::team::create_workspace(tx, user_id, &format!("{name}'s workspace"), true).await?;
    Ok(user_id)
}

/// `nova create-admin`: creates an instance admin, or promotes an existing user and sets
/// their password. Returns whether the user was created.
pub async fn create_admin(
    db: &crate::db::Db,
    email: &str,
    password: String,
) -> anyhow::Result<bool> {
    let email = normalize_email(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    if !(8..=1024).contains(&password.chars().count()) {
        anyhow::bail!("the password must be 8 to 1024 characters");
    }
    let hash = hash_password(password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    let promoted = tx
        .execute(
            "UPDATE users SET is_instance_admin = $2, password_hash = $3, updated_at = $4 WHERE email = $1",
            args![&email, true, &hash, crate::db::now()],
        )
        .await?;
    if promoted == 0 {
        let name = email.split('@').next().unwrap_or_default().to_owned();
        create_user(&mut tx, &email, &name, hash, true)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    tx.commit().await?;
    Ok(promoted == 0)
}

#[derive(sqlx::FromRow)]
struct Credentials {
    id: Uuid,
    password_hash: String,
}

/// Exchanges email and password for a bearer token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, body = crate::error::Problem)))]
async fn login(
    State(state): State<AppState>,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<Json<Session>> {
    let email = req.email.trim().to_lowercase();
    let found: Option<Credentials> = state
        .db
        .fetch_optional(
            "SELECT id, password_hash FROM users WHERE email = $1",
            args![email],
        )
        .await?;
    let user_id = found.as_ref().map(|c| c.id);
    let ok = verify_password(req.password, found.map(|c| c.password_hash)).await?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        return Err(AppError::Unauthorized("invalid email or password"));
    };
    let expires_at = crate::db::now() + Duration::hours(state.config.session_ttl_hours);
    let mut tx = state.db.begin().await?;
    let (_, token) = issue_token(&mut tx, user_id, "session", None, Some(expires_at)).await?;
    tx.commit().await?;
    let user = crate::user::load_user(&state.db, user_id).await?;
    Ok(Json(Session {
        user,
        token,
        expires_at,
    }))
}

/// Revokes the token this request was made with.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    state
        .db
        .execute("DELETE FROM api_tokens WHERE id = $1", args![user.token_id])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
