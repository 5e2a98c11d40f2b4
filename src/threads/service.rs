//! Thread use cases.

use crate::error::AppResult;
use crate::state::AppState;

/// Marks open threads whose space's `expireAfter` has passed without activity.
pub async fn expire_inactive(_state: &AppState) -> AppResult<usize> {
    Ok(0)
}
