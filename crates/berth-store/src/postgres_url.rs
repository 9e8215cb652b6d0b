//! A PostgreSQL store's URL: read into a connection config with a clear error for each way it
//! can be wrong, and shown with its password hidden.

use crate::StoreError;
use std::time::Duration;

/// How long a call waits for a connection (or to make one) before the store is unavailable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL as a connection config, or an error that names what is wrong with it.
pub(crate) fn parse_url(url: &str) -> Result<postgres::Config, StoreError> {
    let bad = |why: String| StoreError::Backend(format!("--store {}: {why}", redacted(url)));
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad("a PostgreSQL store is a URL postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE".into()));
    }
    let config: postgres::Config = url.parse().map_err(|e| bad(format!("not a PostgreSQL URL ({e})")))?;
    if config.get_hosts().is_empty() {
        return Err(bad("names no host".into()));
    }
    if config.get_dbname().is_none() {
        return Err(bad("names no database".into()));
    }
    let mut config = config;
    if config.get_password().is_none() {
        // As libpq does: a password kept out of the URL (and so out of the process list).
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    config.connect_timeout(CONNECT_TIMEOUT).application_name("berth");
    Ok(config)
}

/// `url` with its password replaced, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((user_info, host)) = rest.split_once('@') else { return url.to_string() };
    match user_info.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_that_are_not_a_database_are_refused_naming_why() {
        let message = |url: &str| match parse_url(url) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{url} was accepted"),
        };
        assert!(message("mysql://u@h/db").contains("postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"));
        assert!(message("postgres://u:secret@h:notaport/db").contains("not a PostgreSQL URL"));
        assert!(!message("postgres://u:secret@h:notaport/db").contains("secret"), "the password is never shown");
        assert!(message("postgres://u@h").contains("names no database"));
        assert!(parse_url("postgresql://berth:pw@127.0.0.1:5432/berth").is_ok());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redacted("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
    }
}
