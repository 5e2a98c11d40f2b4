//! Parse-don't-validate helpers for the edges: every text a client sends is
//! trimmed, bounded and checked once, here.

use crate::error::{AppError, AppResult};

/// A required single-line text of 1..=max characters, trimmed.
pub fn name(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::validation(format!("{field} must not be empty")));
    }
    bounded(field, v, max)?;
    if v.chars().any(char::is_control) {
        return Err(AppError::validation(format!(
            "{field} must be one line of text"
        )));
    }
    Ok(v.to_owned())
}

/// An optional single-line text: empty means none.
pub fn optional_name(field: &str, value: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => name(field, v, max).map(Some),
    }
}

/// A text of at most `max` characters (may span lines).
pub fn bounded(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.chars().count() > max {
        return Err(AppError::validation(format!(
            "{field} must have at most {max} characters"
        )));
    }
    Ok(())
}

/// A plausible email address, lower-cased.
pub fn email(value: &str) -> AppResult<String> {
    let v = value.trim().to_lowercase();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.chars().any(|c| c.is_whitespace() || c.is_control())
                && domain
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        });
    if !ok {
        // Its own code, so each client can say it in its own language.
        return Err(AppError::Validation {
            code: "invalid_email",
            message: "email is not a valid address".to_owned(),
        });
    }
    Ok(v)
}

pub fn optional_email(value: Option<&str>) -> AppResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => email(v).map(Some),
    }
}

/// A list of at most `max` items.
pub fn list_len<T>(field: &str, list: &[T], max: usize) -> AppResult<()> {
    if list.len() > max {
        return Err(AppError::validation(format!(
            "{field} must have at most {max} entries"
        )));
    }
    Ok(())
}

/// A colour as `#rrggbb`.
pub fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// `limit` for lists: default 50, at most 200.
pub fn limit(value: Option<usize>) -> AppResult<usize> {
    match value {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(AppError::validation("limit must be between 1 and 200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        assert!(email("ann").is_err());
        assert!(email("ann@localhost").is_err());
        assert!(email("a b@example.com").is_err());
    }

    #[test]
    fn names_are_bounded_single_lines() {
        assert_eq!(name("name", "  Ann ", 10).unwrap(), "Ann");
        assert!(name("name", "   ", 10).is_err());
        assert!(name("name", "a\nb", 10).is_err());
        assert!(name("name", &"x".repeat(11), 10).is_err());
    }
}
