//! Inputs shared by the benches: a credentials file of 1,000 sections and the credentials
//! written into it.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use credsync::ini_edit::{self, ManagedSection};
use credsync::secret::Credentials;

/// Sections in the benched credentials file.
pub const SECTIONS: usize = 1_000;

/// Credentials of realistic sizes (session tokens are several hundred bytes), distinct per
/// profile `i` and `generation`.
pub fn creds(i: usize, generation: u64) -> Credentials {
    Credentials {
        access_key_id: format!("ASIAFAKE{i:06}{generation:06}").into(),
        secret_access_key: format!("fake-secret-{i}-{generation}-{}", "x".repeat(24)).into(),
        session_token: Some(format!("fake-session-{i}-{generation}-{}", "t".repeat(600)).into()),
        expiration: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000 + generation)),
        account_id: Some(format!("{:012}", 100_000_000_000 + i)),
    }
}

/// A credentials file of [`SECTIONS`] sections: the first half the user's own (static keys),
/// the second half managed by credsync (written by `apply` itself), and the managed names.
pub fn thousand_sections() -> (String, Vec<String>) {
    let mut text = String::from("# my credentials\n\n");
    for i in 0..SECTIONS / 2 {
        text += &format!(
            "[user{i}]\naws_access_key_id = AKIAUSER{i:08}\naws_secret_access_key = user-secret-{i}\nregion = eu-west-1\n\n"
        );
    }
    let names: Vec<String> = (0..SECTIONS / 2).map(|i| format!("managed{i}")).collect();
    let all: Vec<Credentials> = (0..names.len()).map(|i| creds(i, 0)).collect();
    let sections: Vec<ManagedSection<'_>> = names
        .iter()
        .zip(&all)
        .map(|(name, credentials)| ManagedSection { name, credentials })
        .collect();
    let edit = ini_edit::apply(&text, &sections, &[]);
    assert!(
        edit.conflicts.is_empty(),
        "the benched file has no conflicts"
    );
    (edit.text, names)
}
