//! The byte-preserving editor of the AWS credentials file: a pure function from the old text and
//! the sections credsync manages to the new text.
//!
//! STUB: the API below is the contract; the body is being written.

use std::time::SystemTime;

use crate::secret::Credentials;

/// Every managed section has this comment line directly above its header.
pub const MARKER_PREFIX: &str = "# managed by credsync";

/// One section credsync wants in the file.
#[derive(Debug, Clone)]
pub struct ManagedSection<'a> {
    /// Section name as written between the brackets (`default`, `dev`), no `profile ` prefix.
    pub name: &'a str,
    pub credentials: &'a Credentials,
}

/// A section the user (or another tool) owns, which credsync was asked to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub section: String,
    /// 1-based line of the section's header in the old text.
    pub line: usize,
}

/// The result of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    /// Sections that were asked for but belong to someone else; left untouched.
    pub conflicts: Vec<Conflict>,
}

/// Upserts `sections` and removes the managed sections named in `remove`, keeping every byte
/// credsync did not write.
pub fn apply(old: &str, sections: &[ManagedSection<'_>], remove: &[&str]) -> Edit {
    let _ = (sections, remove);
    Edit {
        text: old.to_owned(),
        conflicts: Vec::new(),
    }
}

/// Names of the sections in `text` that carry credsync's marker.
pub fn managed_names(text: &str) -> Vec<String> {
    let _ = text;
    Vec::new()
}

/// The credentials and expiry written in the managed section `name`, if it is there and whole.
pub fn read_managed(text: &str, name: &str) -> Option<(Credentials, SystemTime)> {
    let _ = (text, name);
    None
}
