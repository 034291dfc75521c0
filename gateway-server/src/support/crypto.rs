//! Provider credentials at rest: AES-256-GCM under the master key, and masking for display.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::support::ids::{random_bytes, unhex, RandomUnavailable};

/// The 256-bit master key that seals secrets at rest. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = unhex(text.trim())?;
        Some(MasterKey(bytes.try_into().ok()?))
    }

    /// A fresh random key; `None` when the operating system's generator fails.
    pub fn generate() -> Option<Self> {
        random_bytes::<32>().ok().map(MasterKey)
    }

    /// The key as hex, to write into a key file.
    pub(crate) fn to_hex(&self) -> String {
        crate::support::ids::hex(&self.0)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be decrypted (wrong master key or tampered data)")]
pub(crate) struct OpenError;

/// Seals and opens secrets with AES-256-GCM: `nonce (12 bytes) || ciphertext+tag`.
/// The associated data binds a ciphertext to its owner, so a row copied to
/// another merchant does not decrypt.
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub(crate) fn new(key: &MasterKey) -> Self {
        Sealer {
            cipher: Aes256Gcm::new(&key.0.into()),
        }
    }

    pub(crate) fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Result<Vec<u8>, RandomUnavailable> {
        let nonce_bytes = random_bytes::<12>()?;
        let nonce = Nonce::from_slice(&nonce_bytes);
        let payload = Payload {
            msg: plaintext,
            aad: associated,
        };
        // Encryption only fails for inputs past GCM's size limit (64 GiB).
        let ciphertext = self.cipher.encrypt(nonce, payload).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub(crate) fn open(&self, sealed: &[u8], associated: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < 12 + 16 {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| OpenError)
    }
}

/// A secret as it may be shown: its type prefix and last four characters,
/// `sk_test_…4242`; short secrets show nothing.
pub(crate) fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let prefix_len = secret
        .char_indices()
        .filter(|(_, c)| *c == '_')
        .map(|(i, _)| i + 1)
        .take_while(|end| *end <= 8)
        .last()
        .unwrap_or(0);
    let last4: String = chars[chars.len() - 4..].iter().collect();
    format!("{}****{last4}", &secret[..prefix_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let key = MasterKey::generate().unwrap();
        let sealer = Sealer::new(&key);
        let sealed = sealer.seal(b"sk_test_123", b"merchant-a").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"sk_test_123"));
        assert_eq!(sealer.open(&sealed, b"merchant-a").unwrap(), b"sk_test_123");
        assert!(sealer.open(&sealed, b"merchant-b").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&tampered, b"merchant-a").is_err());
        assert!(Sealer::new(&MasterKey::generate().unwrap())
            .open(&sealed, b"merchant-a")
            .is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert!(MasterKey::from_hex(&key.to_hex()).is_some());
        assert!(MasterKey::from_hex("abcd").is_none());
    }

    #[test]
    fn masks_keep_prefix_and_last_four() {
        assert_eq!(mask("sk_test_51HxyzABCDEF4242"), "sk_test_****4242");
        assert_eq!(mask("whsec_abcdefghijkl9876"), "whsec_****9876");
        assert_eq!(mask("plainsecretvalue"), "****alue");
        assert_eq!(mask("short"), "****");
    }
}
