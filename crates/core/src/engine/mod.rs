//! The engine's pure half: the state machine ([`machine`]) and the report of a round
//! ([`report`]). The edge that feeds the machine events and carries out its actions is
//! `credsync::engine`.
pub mod machine;
pub mod report;
