//! ed25519 keys and signatures of bundles: the exporter signs the index bytes (which name every
//! artifact by digest, so the signature covers the whole bundle), the importer verifies them.
//!
//! Key files are one line of text: `ferry-ed25519-private <base64 of the 32-byte seed>` or
//! `ferry-ed25519-public <base64 of the 32-byte public key>` (standard base64, padded). The
//! prefix keeps a private key from being handed out by mistake as the public one (and says
//! which is which). `ferry-source-server keygen` writes a pair.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
use rand::Rng as _;

use super::BundleError;

const PRIVATE_PREFIX: &str = "ferry-ed25519-private ";
const PUBLIC_PREFIX: &str = "ferry-ed25519-public ";
/// A key file is one short line; anything larger is not one.
const MAX_KEY_FILE: u64 = 4096;

/// The exporter's key (`--sign-key`).
pub struct SigningKey(ed25519_dalek::SigningKey);

/// Never the key itself.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// The importer's key (`--verify-key`).
#[derive(Clone, Debug)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

fn read_key(file: &Path, prefix: &str) -> Result<[u8; 32], BundleError> {
    let bad = |reason: String| BundleError::Key {
        file: file.to_path_buf(),
        reason,
    };
    let io = |source| BundleError::Io {
        file: file.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(file).map_err(io)?.len();
    if size > MAX_KEY_FILE {
        return Err(bad(format!("{size} bytes; a key file is one line")));
    }
    let text = std::fs::read_to_string(file).map_err(io)?;
    let other = if prefix == PRIVATE_PREFIX {
        PUBLIC_PREFIX
    } else {
        PRIVATE_PREFIX
    };
    let text = text.trim();
    let b64 = match text.strip_prefix(prefix) {
        Some(b) => b,
        None if text.starts_with(other) => {
            return Err(bad(format!(
                "is a {} key, expected a {} key",
                other.trim().trim_start_matches("ferry-ed25519-"),
                prefix.trim().trim_start_matches("ferry-ed25519-")
            )));
        }
        None => {
            return Err(bad(format!(
                "expected one line \"{prefix}<base64>\" (ferry-source-server keygen writes one)"
            )));
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(format!("{} bytes of key, expected 32", b.len())))
}

impl SigningKey {
    pub fn read(file: &Path) -> Result<Self, BundleError> {
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&read_key(
            file,
            PRIVATE_PREFIX,
        )?)))
    }

    /// The 64-byte signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }
}

impl VerifyingKey {
    pub fn read(file: &Path) -> Result<Self, BundleError> {
        let bytes = read_key(file, PUBLIC_PREFIX)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| BundleError::Key {
                file: file.to_path_buf(),
                reason: format!("not an ed25519 public key: {e}"),
            })
    }

    /// Checks `signature` over `message` (strict: no malleable or small-order forms).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let sig = Signature::from_slice(signature)
            .map_err(|_| format!("{} bytes, expected 64", signature.len()))?;
        self.0.verify_strict(message, &sig).map_err(|_| {
            "does not verify with the --verify-key (tampered index, or signed with another key)"
                .to_string()
        })
    }
}

/// Writes a new key pair: `<prefix>.key` (the private key, mode 0600, create-only) and
/// `<prefix>.pub`. Returns both paths.
pub fn generate_key(prefix: &Path) -> Result<(PathBuf, PathBuf), BundleError> {
    let mut seed = [0u8; 32];
    // ThreadRng is a CSPRNG seeded from the OS.
    rand::rng().fill(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let b64 = base64::engine::general_purpose::STANDARD;
    let private = PathBuf::from(format!("{}.key", prefix.display()));
    let public = PathBuf::from(format!("{}.pub", prefix.display()));
    let write = |file: &Path, text: String, mode: u32| {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(file)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| BundleError::Io {
                file: file.to_path_buf(),
                source,
            })
    };
    write(
        &private,
        format!("{PRIVATE_PREFIX}{}\n", b64.encode(key.to_bytes())),
        0o600,
    )?;
    write(
        &public,
        format!(
            "{PUBLIC_PREFIX}{}\n",
            b64.encode(key.verifying_key().to_bytes())
        ),
        0o644,
    )?;
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_signs_and_verifies_and_files_are_not_confused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = generate_key(&dir.path().join("site")).expect("keygen");
        let sk = SigningKey::read(&private).expect("private");
        let vk = VerifyingKey::read(&public).expect("public");
        let sig = sk.sign(b"index");
        vk.verify(b"index", &sig).expect("verifies");
        assert!(vk.verify(b"index!", &sig).is_err());
        assert!(vk.verify(b"index", &sig[..63]).is_err());
        let err = VerifyingKey::read(&private).expect_err("private as public");
        assert!(err.to_string().contains("is a private key"), "{err}");
        let err = SigningKey::read(&public).expect_err("public as private");
        assert!(err.to_string().contains("is a public key"), "{err}");
        // Create-only: a second keygen does not overwrite the first key.
        assert!(generate_key(&dir.path().join("site")).is_err());
        assert_eq!(
            SigningKey::read(&private).expect("kept").sign(b"x"),
            sk.sign(b"x")
        );
    }
}
