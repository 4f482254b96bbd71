//! Users: who may log in. The password hash (argon2, PHC string) never leaves the store.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub created_at: String,
}

/// Usernames are 3–64 characters of letters, digits, `.`, `_`, `-` and `@`.
pub fn validate_username(name: &str) -> Result<(), &'static str> {
    let ok_len = (3..=64).contains(&name.chars().count());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err("must be 3-64 characters of letters, digits, '.', '_', '-' or '@'")
    }
}

/// Passwords are 8–256 characters.
pub fn validate_password(password: &str) -> Result<(), &'static str> {
    if (8..=256).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err("must be 8-256 characters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_reject_separators_and_short_names() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("a@b.io").is_ok());
        assert!(validate_username("ab").is_err());
        assert!(validate_username("USER#x").is_err());
        assert!(validate_username("../etc").is_err());
    }
}
