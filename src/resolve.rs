//! Resolving one profile to credentials (SSO role credentials now; role chains later).
