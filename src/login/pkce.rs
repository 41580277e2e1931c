//! The secrets of one authorization-code sign-in: the PKCE verifier and its S256 challenge
//! (RFC 7636), and the `state` that ties the browser's answer to this sign-in.
//!
//! As the AWS CLI v2 makes them: a verifier of 64 characters drawn from the unreserved set
//! `[A-Za-z0-9-._~]`, the challenge `base64url(SHA-256(verifier))` without padding, and a random
//! `state` (a UUID-shaped hex string). All from the operating system's random source.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret::SecretString;

/// The characters a verifier is made of (RFC 7636's unreserved set).
const VERIFIER_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// A verifier's length: what the AWS CLI uses (RFC 7636 allows 43 to 128).
pub(crate) const VERIFIER_LEN: usize = 64;

/// Why the random source failed (it does not on any supported system).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub(crate) struct RandomError(String);

/// `n` random bytes from the operating system.
fn random_bytes(n: usize) -> Result<Vec<u8>, RandomError> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(buf)
}

/// A verifier from `bytes` (one character per byte, without modulo bias: bytes at or above
/// the largest multiple of the alphabet's size are skipped); `None` when they run out.
fn verifier_from(bytes: &[u8]) -> Option<String> {
    let n = VERIFIER_CHARS.len();
    let limit = 256 - 256 % n;
    let out: String = bytes
        .iter()
        .filter(|b| usize::from(**b) < limit)
        .take(VERIFIER_LEN)
        .map(|b| char::from(VERIFIER_CHARS[usize::from(*b) % n]))
        .collect();
    (out.len() == VERIFIER_LEN).then_some(out)
}

/// The S256 challenge of `verifier`: base64url of its SHA-256, without `=` padding.
pub(crate) fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE pair and a `state` for one sign-in. `Debug` shows only the challenge.
pub(crate) struct Pkce {
    pub(crate) verifier: SecretString,
    pub(crate) challenge: String,
    pub(crate) state: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"[REDACTED]")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh verifier, its challenge and a fresh `state`.
    pub(crate) fn generate() -> Result<Pkce, RandomError> {
        // Three times what is needed: the odds of running out after skipping are nil, but
        // the loop makes it certain.
        let verifier = loop {
            if let Some(v) = verifier_from(&random_bytes(3 * VERIFIER_LEN)?) {
                break v;
            }
        };
        let challenge = challenge(&verifier);
        Ok(Pkce {
            verifier: verifier.into(),
            challenge,
            state: state_from(&random_bytes(16)?),
        })
    }
}

/// A `state` from 16 random bytes, shaped like the AWS CLI's `uuid4()` (8-4-4-4-12 hex).
fn state_from(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    #[test]
    fn challenge_is_base64url_sha256_without_padding() {
        // python3: base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()), "=" dropped
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ0kmGMNfYbdK3IULxUDCgCSSYJLpA"),
            "fWZ5EsaAYke3rrYH27iuOCZweVR7n4qu9qHgdtfo9bA"
        );
    }

    #[test]
    fn verifiers_are_64_unreserved_characters_and_differ() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        for p in [&a, &b] {
            let v = p.verifier.expose_secret();
            assert_eq!(v.len(), VERIFIER_LEN);
            assert!(v.bytes().all(|c| VERIFIER_CHARS.contains(&c)), "{v}");
            assert_eq!(p.challenge, challenge(v));
            assert!(!p.challenge.contains('='));
            assert_eq!(p.state.len(), 36);
        }
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_ne!(a.state, b.state);
        assert!(!format!("{a:?}").contains(a.verifier.expose_secret()));
    }

    #[test]
    fn biased_bytes_are_skipped_and_too_few_give_none() {
        // 66 characters: 256 - 256 % 66 = 198; bytes 198..=255 are skipped.
        let mut bytes = vec![255u8; 10];
        bytes.extend(std::iter::repeat_n(0u8, VERIFIER_LEN));
        assert_eq!(verifier_from(&bytes).unwrap(), "A".repeat(VERIFIER_LEN));
        assert_eq!(verifier_from(&[65u8; VERIFIER_LEN - 1]), None);
        assert_eq!(
            verifier_from(&[65u8; VERIFIER_LEN]).unwrap(),
            "~".repeat(VERIFIER_LEN)
        );
    }

    #[test]
    fn state_is_uuid_shaped() {
        assert_eq!(
            state_from(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }
}
