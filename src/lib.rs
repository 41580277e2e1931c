//! credsync keeps AWS credentials fresh on disk for programs that cannot refresh them.
pub mod aws_profile;
pub mod chain;
pub mod config;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod ini_edit;
pub mod logging;
pub mod resolve;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod sso_cache;
pub mod state;
pub mod timefmt;
pub mod write;
