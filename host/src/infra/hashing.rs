//! Hashing: SHA-256 digests (tokens, contents, packages) and argon2id passwords, the latter
//! off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// The SHA-256 of bytes, in hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Argon2 runs at most this many at once (one per core): a burst of logins queues instead of
/// taking every blocking thread and all the memory argon2 asks for.
fn argon2_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// Hashes a password with argon2id off the async runtime.
pub async fn hash_password(password: String) -> AppResult<String> {
    let _slot = argon2_slots()
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
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
pub async fn verify_password(password: String, stored: Option<String>) -> AppResult<bool> {
    let _slot = argon2_slots()
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
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
