//! `tfc-gateway init`: a data directory with the organisation key, the admin PKI, a commented
//! `gateway.toml` and an empty store. Running it again keeps everything that exists.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::default_config_text;
use crate::identity::{IdentityError, KeyAlgorithm, KeyPair};
use crate::store::{Store, StoreError};
use crate::tls::{Provisioned, TlsError, TlsFiles, provision};

/// The store's directory under the data directory.
pub const STORE_DIR: &str = "store";
/// The org key's file name under the data directory.
pub const KEY_FILE: &str = "org-key.pem";
/// The config's file name under the data directory.
pub const CONFIG_FILE: &str = "gateway.toml";

/// Initialising a data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory or a file could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key to import, or the key found, is unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The data directory already has another key than the one to import.
    #[error("{path} already holds {existing}; refusing to replace it with {imported}")]
    KeyConflict {
        /// The existing key file.
        path: PathBuf,
        /// Its DID.
        existing: String,
        /// The DID of the key offered for import.
        imported: String,
    },
    /// The admin PKI could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be created.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The organisation's DID.
    pub did: String,
    /// Its libp2p PeerId.
    pub peer_id: String,
    /// Whether the key was made (or imported) now.
    pub key: Provisioned,
    /// Whether the TLS files were made now.
    pub tls: Provisioned,
    /// Whether `gateway.toml` was written now.
    pub config: Provisioned,
    /// The config file.
    pub config_path: PathBuf,
    /// The admin PKI files.
    pub tls_files: TlsFiles,
}

/// Initialises `data_dir`, importing `import_key` (an Ed25519 PKCS#8 PEM file) if given.
pub fn init(data_dir: &Path, import_key: Option<&Path>) -> Result<InitReport, InitError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InitError::Io { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(data_dir))?;
    let data_dir = std::fs::canonicalize(data_dir).map_err(io(data_dir))?;
    let (key, key_state) = org_key(&data_dir.join(KEY_FILE), import_key)?;
    let tls_files = TlsFiles::under(&data_dir);
    let tls = provision(&tls_files, &key.did())?;
    let config_path = data_dir.join(CONFIG_FILE);
    let config = if config_path.exists() {
        Provisioned::Kept
    } else {
        std::fs::write(&config_path, default_config_text(&data_dir)).map_err(io(&config_path))?;
        Provisioned::Created
    };
    Store::open(&data_dir.join(STORE_DIR))?.commit_blocking()?;
    Ok(InitReport {
        did: key.did(),
        peer_id: key.peer_id()?.to_string(),
        key: key_state,
        tls,
        config,
        config_path,
        tls_files,
    })
}

fn org_key(path: &Path, import_key: Option<&Path>) -> Result<(KeyPair, Provisioned), InitError> {
    let imported = import_key.map(KeyPair::load).transpose()?;
    if let Some(key) = &imported {
        key.peer_id()?;
    }
    if path.exists() {
        let existing = KeyPair::load(path)?;
        if let Some(imported) = imported.filter(|key| key.did() != existing.did()) {
            return Err(InitError::KeyConflict {
                path: path.to_owned(),
                existing: existing.did(),
                imported: imported.did(),
            });
        }
        return Ok((existing, Provisioned::Kept));
    }
    let key = imported.unwrap_or_else(|| KeyPair::generate(KeyAlgorithm::Ed25519));
    key.save(path)?;
    Ok((key, Provisioned::Created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    #[test]
    fn init_makes_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("gw");
        let first = init(&data, None).unwrap();
        assert_eq!(
            (first.key, first.tls, first.config),
            (
                Provisioned::Created,
                Provisioned::Created,
                Provisioned::Created
            )
        );
        assert!(first.did.starts_with("did:key:z6Mk"));
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for secret in [
            data.join(KEY_FILE),
            first.tls_files.ca_key.clone(),
            first.tls_files.server_key.clone(),
            first.tls_files.client_key.clone(),
        ] {
            assert_eq!(mode(&secret), 0o600, "{}", secret.display());
        }
        let config = GatewayConfig::load(&first.config_path).unwrap();
        assert_eq!(config.data_dir, std::fs::canonicalize(&data).unwrap());
        let ca_before = std::fs::read(&first.tls_files.ca_cert).unwrap();
        let again = init(&data, None).unwrap();
        assert_eq!(
            (again.key, again.tls, again.config),
            (Provisioned::Kept, Provisioned::Kept, Provisioned::Kept)
        );
        assert_eq!(again.did, first.did);
        assert_eq!(std::fs::read(&first.tls_files.ca_cert).unwrap(), ca_before);
    }

    #[test]
    fn init_imports_a_key_and_refuses_to_replace_one() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("existing.pem");
        let key = KeyPair::generate(KeyAlgorithm::Ed25519);
        key.save(&key_file).unwrap();
        let data = dir.path().join("gw");
        assert_eq!(init(&data, Some(&key_file)).unwrap().did, key.did());
        assert_eq!(init(&data, Some(&key_file)).unwrap().key, Provisioned::Kept);
        let other = dir.path().join("other.pem");
        KeyPair::generate(KeyAlgorithm::Ed25519)
            .save(&other)
            .unwrap();
        assert!(matches!(
            init(&data, Some(&other)),
            Err(InitError::KeyConflict { .. })
        ));
        let issuer_key = dir.path().join("p256.pem");
        KeyPair::generate(KeyAlgorithm::P256)
            .save(&issuer_key)
            .unwrap();
        assert!(matches!(
            init(&dir.path().join("gw2"), Some(&issuer_key)),
            Err(InitError::Identity(IdentityError::NotEd25519))
        ));
    }

    #[test]
    fn a_half_made_pki_is_not_completed_silently() {
        let dir = tempfile::tempdir().unwrap();
        let report = init(dir.path(), None).unwrap();
        std::fs::remove_file(&report.tls_files.server_key).unwrap();
        assert!(matches!(
            init(dir.path(), None),
            Err(InitError::Tls(TlsError::Partial { missing: 1, .. }))
        ));
    }

    #[test]
    fn the_certificates_chain_to_the_admin_ca_for_their_purpose() {
        // OpenSSL is the independent judge here; the API's own mutual-TLS tests come with it.
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), None).unwrap().tls_files;
        let verify = |certificate: &Path, purpose: &str| {
            std::process::Command::new("openssl")
                .args(["verify", "-purpose", purpose, "-CAfile"])
                .arg(&files.ca_cert)
                .arg(certificate)
                .output()
                .expect("openssl is needed for this test")
                .status
                .success()
        };
        assert!(verify(&files.server_cert, "sslserver"));
        assert!(verify(&files.client_cert, "sslclient"));
        assert!(
            !verify(&files.client_cert, "sslserver"),
            "the admin certificate must not serve"
        );
        let stranger = tempfile::tempdir().unwrap();
        let other_ca = init(stranger.path(), None).unwrap().tls_files.ca_cert;
        let foreign = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&other_ca)
            .arg(&files.client_cert)
            .output()
            .unwrap();
        assert!(
            !foreign.status.success(),
            "another gateway's CA must not vouch for this admin"
        );
    }
}
