//! Organisation identity: key pairs, PKCS#8 key files, `did:key`, and the libp2p identity.
//!
//! An organisation key is Ed25519; its `did:key` and its libp2p `PeerId` name the same public
//! key, so network identity and organisation identity are one. Issuers may also use P-256.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use zeroize::Zeroizing;

use crate::secret_file::{PrivacyError, check_private, create_private};

/// The `did:key:` method prefix.
pub const DID_KEY_PREFIX: &str = "did:key:";

/// Multicodec varint prefix of an Ed25519 public key (0xed).
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];
/// Multicodec varint prefix of a compressed P-256 public key (0x1200).
const P256_MULTICODEC: [u8; 2] = [0x80, 0x24];
/// How libp2p encodes an Ed25519 public key (protobuf: key type 1, then 32 bytes), which an
/// Ed25519 PeerId holds verbatim.
const ED25519_PROTOBUF: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
/// Longest multibase value we decode: a P-256 key is 35 bytes, about 48 base58 characters.
const MAX_MULTIBASE_LEN: usize = 64;
/// Key files are small; anything bigger is not a key.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

/// The signature algorithms an organisation or issuer key can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 (JWS `EdDSA`); every organisation key.
    Ed25519,
    /// ECDSA over P-256 with SHA-256 (JWS `ES256`); accepted for issuers.
    P256,
}

impl KeyAlgorithm {
    /// The JWS `alg` name for this key type.
    pub fn jws_alg(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "EdDSA",
            KeyAlgorithm::P256 => "ES256",
        }
    }
}

/// Everything that can go wrong with keys, key files and DIDs.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file can be read by group or others.
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing would replace an existing key.
    #[error("{path} already exists; refusing to overwrite a key (choose another path)")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a PKCS#8 PEM private key of a supported type.
    #[error("{path} is not a PKCS#8 PEM Ed25519 or P-256 private key")]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
    /// The string is not a `did:key` we can decode.
    #[error("not a supported did:key ({reason}): {did}")]
    InvalidDid {
        /// The offending DID, shortened for display.
        did: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An Ed25519 key was required (organisation keys and libp2p identities).
    #[error("organisation keys must be Ed25519; this key is P-256")]
    NotEd25519,
}

impl IdentityError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::InsecurePermissions { .. } => "insecure_key_file",
            IdentityError::Io { .. } => "io",
            IdentityError::AlreadyExists { .. } => "already_exists",
            IdentityError::NotAKey { .. } => "not_a_key",
            IdentityError::InvalidDid { .. } => "invalid_did",
            IdentityError::NotEd25519 => "not_ed25519",
        }
    }
}

/// A public key named by a `did:key`.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 key (`did:key:z6Mk…`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 key (`did:key:zDn…`).
    P256(p256::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_did())
    }
}

impl PublicKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::P256(_) => KeyAlgorithm::P256,
        }
    }

    /// The multibase (base58btc, `z…`) encoding of the multicodec-prefixed key.
    pub fn multibase(&self) -> String {
        let mut bytes = Vec::with_capacity(35);
        match self {
            PublicKey::Ed25519(key) => {
                bytes.extend_from_slice(&ED25519_MULTICODEC);
                bytes.extend_from_slice(key.as_bytes());
            }
            PublicKey::P256(key) => {
                bytes.extend_from_slice(&P256_MULTICODEC);
                bytes.extend_from_slice(key.to_encoded_point(true).as_bytes());
            }
        }
        format!("z{}", bs58::encode(bytes).into_string())
    }

    /// The `did:key` naming this key.
    pub fn to_did(&self) -> String {
        format!("{DID_KEY_PREFIX}{}", self.multibase())
    }

    /// The verification method id of this key: `<did>#<multibase>`, as the did:key method
    /// defines it.
    pub fn key_id(&self) -> String {
        let multibase = self.multibase();
        format!("{DID_KEY_PREFIX}{multibase}#{multibase}")
    }

    /// Decodes a `did:key` (without fragment) into its public key.
    ///
    /// Ed25519 keys of small order are refused: anyone could forge signatures for them.
    pub fn from_did(did: &str) -> Result<Self, IdentityError> {
        let invalid = |reason| IdentityError::InvalidDid {
            did: did.chars().take(80).collect(),
            reason,
        };
        let multibase = did
            .strip_prefix(DID_KEY_PREFIX)
            .ok_or_else(|| invalid("not the did:key method"))?;
        let encoded = multibase
            .strip_prefix('z')
            .ok_or_else(|| invalid("not base58btc multibase"))?;
        if encoded.len() > MAX_MULTIBASE_LEN {
            return Err(invalid("too long"));
        }
        let bytes = bs58::decode(encoded)
            .into_vec()
            .map_err(|_| invalid("bad base58btc"))?;
        match bytes.split_at_checked(2) {
            Some((prefix, key)) if prefix == ED25519_MULTICODEC => {
                let key: [u8; 32] = key.try_into().map_err(|_| invalid("bad key length"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
                    .map_err(|_| invalid("not an Ed25519 point"))?;
                if key.is_weak() {
                    return Err(invalid("weak Ed25519 key"));
                }
                Ok(PublicKey::Ed25519(key))
            }
            Some((prefix, key)) if prefix == P256_MULTICODEC => {
                if key.len() != 33 {
                    return Err(invalid("P-256 keys must be compressed (33 bytes)"));
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                    .map(PublicKey::P256)
                    .map_err(|_| invalid("not a P-256 point"))
            }
            _ => Err(invalid("unsupported key type")),
        }
    }

    /// The libp2p PeerId of an Ed25519 key (`None` for P-256: only organisations run peers).
    pub fn peer_id(&self) -> Option<libp2p::PeerId> {
        let PublicKey::Ed25519(key) = self else {
            return None;
        };
        let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(key.as_bytes()).ok()?;
        Some(libp2p::identity::PublicKey::from(key).to_peer_id())
    }

    /// The PeerId of the organisation a DID names, if it is an Ed25519 `did:key`.
    pub fn peer_id_of(did: &str) -> Option<libp2p::PeerId> {
        Self::from_did(did).ok()?.peer_id()
    }

    /// The PeerId an Ed25519 `did:key` names, read from its bytes without decoding the key
    /// as a curve point (`peer_id_of` does): for matching a DID against connections and
    /// records, whose keys were checked when they were made. Never for verifying anything.
    pub fn peer_id_named(did: &str) -> Option<libp2p::PeerId> {
        let encoded = did.strip_prefix(DID_KEY_PREFIX)?.strip_prefix('z')?;
        if encoded.len() > MAX_MULTIBASE_LEN {
            return None;
        }
        let bytes = bs58::decode(encoded).into_vec().ok()?;
        let key = bytes.strip_prefix(&ED25519_MULTICODEC)?;
        if key.len() != 32 {
            return None;
        }
        // The identity multihash (code 0, 36 bytes) of the protobuf-encoded key.
        let mut multihash = vec![0x00, 0x24];
        multihash.extend_from_slice(&ED25519_PROTOBUF);
        multihash.extend_from_slice(key);
        libp2p::PeerId::from_bytes(&multihash).ok()
    }

    /// The `did:key` of the organisation whose Ed25519 key a PeerId is (`None` for any
    /// other kind of PeerId).
    pub fn did_of_peer(peer: &libp2p::PeerId) -> Option<String> {
        // An Ed25519 PeerId is the identity multihash (code 0) of the protobuf-encoded key:
        // key type 1 (Ed25519), then the 32 key bytes. The bytes are copied, not decoded as
        // a curve point: that costs two square roots, and this runs for every peer on every
        // gossip message and change of facts. A DID names a key; whatever verifies with it
        // decodes and checks it then (`from_did`).
        let multihash = peer.as_ref();
        let key = multihash.digest().strip_prefix(&ED25519_PROTOBUF)?;
        if multihash.code() != 0 || key.len() != 32 {
            return None;
        }
        let mut bytes = Vec::with_capacity(ED25519_MULTICODEC.len() + key.len());
        bytes.extend_from_slice(&ED25519_MULTICODEC);
        bytes.extend_from_slice(key);
        Some(format!(
            "{DID_KEY_PREFIX}z{}",
            bs58::encode(bytes).into_string()
        ))
    }

    /// Verifies a JWS signature (Ed25519: 64 bytes; ES256: raw `r || s`, 64 bytes).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
            PublicKey::P256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
        }
    }
}

/// A private key: an organisation's Ed25519 key or an issuer's P-256 key.
pub enum KeyPair {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// P-256.
    P256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for KeyPair {
    // Never print secret material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.did())
    }
}

impl KeyPair {
    /// Generates a fresh key from the OS random source.
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        let mut rng = rand_core::OsRng;
        match algorithm {
            KeyAlgorithm::Ed25519 => {
                KeyPair::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng))
            }
            KeyAlgorithm::P256 => KeyPair::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    /// An Ed25519 key from its 32-byte secret seed (to import a key held elsewhere).
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        KeyPair::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            KeyPair::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            KeyPair::P256(key) => PublicKey::P256(*key.verifying_key()),
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            KeyPair::Ed25519(_) => KeyAlgorithm::Ed25519,
            KeyPair::P256(_) => KeyAlgorithm::P256,
        }
    }

    /// The `did:key` of the public half.
    pub fn did(&self) -> String {
        self.public_key().to_did()
    }

    /// Signs `message`, returning the JWS form of the signature (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            KeyPair::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            KeyPair::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
        }
    }

    /// The PKCS#8 DER encoding of the private key.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let document = match self {
            KeyPair::Ed25519(key) => ed25519_v1_pkcs8(key).to_pkcs8_der(),
            KeyPair::P256(key) => key.to_pkcs8_der(),
        };
        // Encoding an in-memory key of a fixed type into DER cannot fail.
        match document {
            Ok(document) => Zeroizing::new(document.as_bytes().to_vec()),
            Err(error) => unreachable!("PKCS#8 encoding of a valid key failed: {error}"),
        }
    }

    /// The PKCS#8 PEM encoding of the private key.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let line_ending = p256::pkcs8::LineEnding::LF;
        let pem = match self {
            KeyPair::Ed25519(key) => ed25519_v1_pkcs8(key).to_pkcs8_pem(line_ending),
            KeyPair::P256(key) => key.to_pkcs8_pem(line_ending),
        };
        match pem {
            Ok(pem) => pem,
            Err(error) => unreachable!("PKCS#8 encoding of a valid key failed: {error}"),
        }
    }

    /// Parses a PKCS#8 PEM private key (Ed25519 or P-256).
    pub fn from_pkcs8_pem(pem: &str) -> Option<Self> {
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Some(KeyPair::Ed25519(key));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .ok()
            .map(KeyPair::P256)
    }

    /// Writes the key as PKCS#8 PEM to a new file with mode 0600. Never overwrites.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        create_private(path, self.to_pkcs8_pem().as_bytes()).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => IdentityError::AlreadyExists {
                path: path.to_owned(),
            },
            _ => IdentityError::Io {
                path: path.to_owned(),
                source,
            },
        })
    }

    /// Loads a PKCS#8 PEM key file, refusing files that group or others can read.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let io_error = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        match check_private(path) {
            Ok(()) => {}
            Err(PrivacyError::Exposed { mode }) => {
                return Err(IdentityError::InsecurePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
            Err(PrivacyError::Io(source)) => return Err(io_error(source)),
        }
        if fs::metadata(path).map_err(io_error)?.len() > MAX_KEY_FILE_LEN {
            return Err(IdentityError::NotAKey {
                path: path.to_owned(),
            });
        }
        let pem = Zeroizing::new(fs::read_to_string(path).map_err(io_error)?);
        Self::from_pkcs8_pem(&pem).ok_or_else(|| IdentityError::NotAKey {
            path: path.to_owned(),
        })
    }

    /// The libp2p identity keypair derived from the same Ed25519 secret.
    ///
    /// libp2p and this module use different ed25519-dalek major versions, so the key crosses
    /// over as its 32-byte seed.
    pub fn libp2p_keypair(&self) -> Result<libp2p::identity::Keypair, IdentityError> {
        let KeyPair::Ed25519(key) = self else {
            return Err(IdentityError::NotEd25519);
        };
        let mut seed = Zeroizing::new(key.to_bytes());
        libp2p::identity::Keypair::ed25519_from_bytes(seed.as_mut())
            .map_err(|_| IdentityError::NotEd25519)
    }

    /// The libp2p `PeerId` of this organisation.
    pub fn peer_id(&self) -> Result<libp2p::identity::PeerId, IdentityError> {
        Ok(self.libp2p_keypair()?.public().to_peer_id())
    }
}

/// The key as PKCS#8 v1 (RFC 8410 without the optional public key): ed25519-dalek writes v2,
/// which OpenSSL accepts but Python's `cryptography` and some HSM tools refuse.
fn ed25519_v1_pkcs8(key: &ed25519_dalek::SigningKey) -> ed25519_dalek::pkcs8::KeypairBytes {
    ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
}

/// Splits a JWS `kid` (`<did>#<fragment>`) into the DID and fragment.
pub fn split_key_id(kid: &str) -> Option<(&str, &str)> {
    kid.split_once('#')
}

#[cfg(test)]
mod tests;
