//! The principals berth accepts, read from a file in the AWS shared-credentials format
//! (`~/.aws/credentials`): every profile with an `aws_access_key_id` and an
//! `aws_secret_access_key` is one principal.

use crate::sigv4::Principals;

/// Why a credentials file gives no principals: a line that cannot be read, or no profile
/// with both keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("no profile has both aws_access_key_id and aws_secret_access_key")]
    NoProfile,
}

/// Parses a shared-credentials file. Profiles without both keys are skipped; a file without
/// any complete profile is an error (berth would refuse everyone).
pub fn parse_credentials(text: &str) -> Result<Principals, CredentialsError> {
    let mut principals = Principals::default();
    let mut profile: Option<(String, Option<String>, Option<String>)> = None;
    let finish = |p: Option<(String, Option<String>, Option<String>)>, principals: &mut Principals| {
        if let Some((name, Some(key), Some(secret))) = p {
            principals.insert(key, secret, name);
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let problem = || CredentialsError::Line { line: i + 1, problem: "a section header must end with ']'".into() };
            let name = section.strip_suffix(']').ok_or_else(problem)?.trim();
            finish(profile.take(), &mut principals);
            profile = Some((name.strip_prefix("profile ").unwrap_or(name).trim().to_string(), None, None));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(CredentialsError::Line { line: i + 1, problem: "expected 'name = value'".into() });
        };
        let Some(p) = profile.as_mut() else {
            return Err(CredentialsError::Line { line: i + 1, problem: format!("'{}' comes before any [profile] section", key.trim()) });
        };
        let value = value.trim().to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => p.1 = Some(value),
            "aws_secret_access_key" => p.2 = Some(value),
            _ => {}
        }
    }
    finish(profile, &mut principals);
    if principals.is_empty() {
        return Err(CredentialsError::NoProfile);
    }
    Ok(principals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_complete_profile_is_a_principal() {
        let p = parse_credentials(
            "# keys for berth\n[default]\naws_access_key_id = AKID1\naws_secret_access_key=secret1\n\n\
             [profile ci]\n aws_access_key_id=AKID2\n aws_secret_access_key = s2 \nregion = eu-west-1\n[half]\naws_access_key_id=AKID3\n",
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.check_secret("AKID1", "secret1").unwrap().name, "default");
        assert_eq!(p.check_secret("AKID2", "s2").unwrap().name, "ci");
        assert!(p.check_secret("AKID3", "").is_none());
    }

    #[test]
    fn broken_files_say_where() {
        assert!(parse_credentials("aws_access_key_id = x\n").unwrap_err().to_string().contains("line 1"));
        assert!(parse_credentials("[default\n").unwrap_err().to_string().contains("line 1"));
        assert!(parse_credentials("[default]\nregion = x\n").unwrap_err().to_string().contains("no profile"));
    }
}
