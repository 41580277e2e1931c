//! The AWS config file as read from disk: [`load`] reads it through [`crate::user_file`] and
//! hands the text to the parser in `credsync_core::aws_profile`, whose names this module
//! re-exports.

use std::path::Path;

pub use credsync_core::aws_profile::*;

/// Reads (through [`crate::user_file`]) and parses `path`. A missing file is an empty config.
pub fn load(path: &Path) -> Result<AwsConfig, ProfileError> {
    match crate::user_file::read_text(path, crate::user_file::Kind::AwsConfig)
        .map_err(|e| ProfileError::File(e.to_string()))?
    {
        Some(text) => parse(&text, path),
        None => Ok(AwsConfig {
            path: path.to_owned(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(&dir.path().join("config")).unwrap();
        assert!(c.profiles.is_empty());
        // A missing credentials file is read as empty text, which has no profiles.
        assert!(
            parse_credentials("", &dir.path().join("credentials"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn load_names_the_line_of_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, b"[profile a]\nregion = eu\n[profile caf\xe9]\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        let want = format!(
            "{}:3:13: not valid UTF-8 (byte 13 of line 3)",
            path.display()
        );
        assert!(e.starts_with(&want), "{e}");
        assert!(e.contains("the AWS config must be UTF-8 text"), "{e}");
    }
}
