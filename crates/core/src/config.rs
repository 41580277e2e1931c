//! The part of credsync's configuration the planner and the machine use: which profile is
//! refreshed into which credentials-file section. The TOML file, its defaults and validation
//! are `credsync::config`, at the edge.

/// One managed profile: where its credentials come from and where they are written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileEntry {
    /// A profile in the AWS config file.
    pub source: String,
    /// The section written to the credentials file.
    pub target: String,
}
