//! `/api/auth/*`: register, login, logout; and `nova create-admin`.

use axum::http::StatusCode;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::{Json, extract::State};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::UserView;
use crate::args;
use crate::auth::{AuthUser, issue_token};
use crate::db::{Tx, new_id};
use crate::error::{AppError, AppJson, AppResult, ConflictOnDuplicate};
use crate::infra::hashing::{hash_bytes, hash_password, verify_password};
use crate::state::AppState;

/// The PostgreSQL advisory lock under which a registration checks whether it is the first.
const FIRST_USER_LOCK: i64 = 0x6e6f_7661_0001;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(change_password))
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
#[schema(as = LoginSession)]
pub struct Session {
    pub user: UserView,
    /// The bearer token; send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Counts a login or registration attempt under `key` (429 past the limit).
async fn limit(state: &AppState, key: &str) -> AppResult<()> {
    state
        .rate_limiter
        .per_minute(key, state.config.auth_rate_limit_per_minute)
        .await
}

/// Passwords are 8 to 1024 characters.
fn validate_password(field: &str, password: &str) -> AppResult<()> {
    if (8..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AppError::invalid(field, "must be 8 to 1024 characters"))
    }
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
    responses((status = 201, body = Session), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem)))]
async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<(StatusCode, Json<Session>)> {
    limit(&state, &format!("auth:ip:{}", peer.ip())).await?;
    let email = normalize_email(&req.email)?;
    validate_password("password", &req.password)?;
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
    // Registrations take turns deciding who is first (SQLite's write lock does it already), so
    // two at once make one instance admin, not two.
    if tx.is_postgres() {
        tx.execute("SELECT pg_advisory_xact_lock($1)", args![FIRST_USER_LOCK])
            .await?;
    }
    let anyone: bool = tx
        .scalar("SELECT EXISTS (SELECT 1 FROM users)", args![])
        .await?;
    let user_id = create_user(&mut tx, &email, &name, password_hash, !anyone).await?;
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
    tx
        .execute(
            "INSERT INTO users (id, email, name, password_hash, is_instance_admin, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            args![user_id, email, name, password_hash, is_instance_admin, now],
        )
        .await
        .conflict_on_duplicate("an account with this email already exists")?;
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
    validate_password("password", &password).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    if promoted > 0 {
        // A reset password ends the sessions made with the old one.
        tx.execute(
            "DELETE FROM api_tokens WHERE kind = 'session'
             AND user_id = (SELECT id FROM users WHERE email = $1)",
            args![&email],
        )
        .await?;
    } else {
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
    responses((status = 200, body = Session), (status = 401, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem)))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<Json<Session>> {
    let email = req.email.trim().to_lowercase();
    // Guessing is throttled both from one address and against one account.
    limit(&state, &format!("auth:ip:{}", peer.ip())).await?;
    limit(
        &state,
        &format!("auth:account:{}", hash_bytes(email.as_bytes())),
    )
    .await?;
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
    crate::realtime::access_changed(&state, user.id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every login session of the caller, this one included (API keys stay: they are
/// managed at `/api/user/api-keys`).
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem)))]
async fn logout_all(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    state
        .db
        .execute(
            "DELETE FROM api_tokens WHERE user_id = $1 AND kind = 'session'",
            args![user.id],
        )
        .await?;
    crate::realtime::access_changed(&state, user.id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// 8 to 1024 characters.
    pub new_password: String,
}

/// Changes the caller's password; their other login sessions end (this one stays).
#[utoipa::path(put, path = "/api/user/password", tag = "user",
    security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<PasswordChange>,
) -> AppResult<StatusCode> {
    validate_password("new_password", &req.new_password)?;
    let (stored,): (String,) = state
        .db
        .fetch_one(
            "SELECT password_hash FROM users WHERE id = $1",
            args![user.id],
        )
        .await?;
    if !verify_password(req.current_password, Some(stored)).await? {
        return Err(AppError::forbidden("the current password is wrong"));
    }
    let hash = hash_password(req.new_password).await?;
    let mut tx = state.db.begin().await?;
    tx.execute(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
        args![user.id, hash, crate::db::now()],
    )
    .await?;
    tx.execute(
        "DELETE FROM api_tokens WHERE user_id = $1 AND kind = 'session' AND id <> $2",
        args![user.id, user.token_id],
    )
    .await?;
    tx.commit().await?;
    crate::realtime::access_changed(&state, user.id).await;
    Ok(StatusCode::NO_CONTENT)
}
