//! argon2id password hashing, run off the async threads.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{AppError, AppResult};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 256;

pub fn validate(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(AppError::validation(format!(
            "password must have at least {MIN_LEN} characters"
        )));
    }
    if n > MAX_LEN {
        return Err(AppError::validation(format!(
            "password must have at most {MAX_LEN} characters"
        )));
    }
    Ok(())
}

/// Password hashes running at once: each holds 19 MiB for its time, so a
/// burst of logins must not multiply that past the memory there is; more
/// at once than cores would not finish sooner anyway.
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(crate::memory::hash_permits(cores))
    })
}

pub async fn hash(password: String) -> AppResult<String> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
}

/// Checks a password against a stored hash; an empty hash never matches.
pub async fn verify(password: String, hash: String) -> bool {
    if hash.is_empty() {
        // Spend the same time as a real check so timing says nothing.
        let _ = self::hash(password).await;
        return false;
    }
    let Ok(_permit) = permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = super::hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert!(super::verify("correct horse".into(), a.clone()).await);
        assert!(!super::verify("wrong horse".into(), a).await);
    }
}
