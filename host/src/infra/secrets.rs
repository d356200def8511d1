//! Secrets at rest (webhook secrets, integration and provider credentials): ChaCha20-Poly1305
//! under the master key, stored as `v1:` + base64(nonce ‖ ciphertext).

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// The configured key, or the one kept in `<data_dir>/master.key` (made on first start).
    /// Replicas must share `NOVA_MASTER_KEY`; the file suits a single embedded host.
    pub fn load(configured: Option<&[u8; 32]>, data_dir: &Path) -> anyhow::Result<SecretBox> {
        if let Some(key) = configured {
            return Ok(SecretBox::new(key));
        }
        let path = data_dir.join("master.key");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let bytes = STANDARD
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))?;
            return Ok(SecretBox::new(&key));
        }
        std::fs::create_dir_all(data_dir)?;
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        write_private(&path, STANDARD.encode(key).as_bytes())?;
        Ok(SecretBox::new(&key))
    }

    pub fn encrypt(&self, plaintext: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    pub fn decrypt(&self, stored: &str) -> anyhow::Result<String> {
        let Some(b64) = stored.strip_prefix("v1:") else {
            bail!("unknown secret format");
        };
        let bytes = STANDARD.decode(b64)?;
        if bytes.len() < 12 {
            bail!("secret too short");
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| anyhow::anyhow!("the secret does not open with this master key"))?;
        Ok(String::from_utf8(plain)?)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(bytes)?;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, bytes).with_context(|| format!("creating {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let b = SecretBox::new(&[9; 32]);
        let sealed = b.encrypt("sk-live-123").unwrap();
        assert!(!sealed.contains("sk-live"));
        assert_eq!(b.decrypt(&sealed).unwrap(), "sk-live-123");
        assert_ne!(
            b.encrypt("sk-live-123").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert!(SecretBox::new(&[8; 32]).decrypt(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(b.decrypt(&tampered).is_err() || tampered == sealed);
    }

    #[test]
    fn key_file_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load(None, dir.path()).unwrap();
        let sealed = a.encrypt("x").unwrap();
        let b = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(b.decrypt(&sealed).unwrap(), "x");
    }
}
