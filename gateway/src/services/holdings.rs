//! What this organisation holds: the fields it joined and its own credentials. Joining a field
//! and importing a credential are checked here and kept on disk before they count; the API
//! and the daemon both call these.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::PeerId;
use libp2p::multiaddr::Protocol;
use tokio::sync::mpsc;

use crate::credential::{
    CredentialVerifier, ErrorCode, VerificationError, VerifiedCredential, VerifyContext, now_unix,
};
use crate::field::{Field, FieldError};
use crate::net::Command;
use crate::services::Services;
use crate::store::StoreError;

/// A field could not be joined, or a credential not imported.
#[derive(Debug, thiserror::Error)]
pub enum HoldingError {
    /// The charter does not load.
    #[error("field {path}: {source}")]
    Field {
        /// The charter file.
        path: PathBuf,
        /// Why.
        source: FieldError,
    },
    /// A credential offered to the wallet does not verify or is not ours.
    #[error("wallet: {0}")]
    Wallet(VerificationError),
    /// The wallet already holds a credential with this id.
    #[error("wallet: credential {0} is already in the wallet")]
    Duplicate(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HoldingError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            HoldingError::Field { source, .. } => source.code(),
            HoldingError::Wallet(error) => error.code.as_str(),
            HoldingError::Duplicate(_) => "duplicate_credential",
            HoldingError::Store(error) => error.code(),
        }
    }
}

/// Takes part in `field` on the network: its gossip, and a dial to each of its bootstrap
/// gateways but our own.
pub async fn announce_field(commands: &mpsc::Sender<Command>, field: &Field, own: PeerId) {
    let _ = commands
        .send(Command::JoinField(field.charter.field_id()))
        .await;
    for address in &field.charter.bootstrap {
        if address.iter().last() != Some(Protocol::P2p(own)) {
            let _ = commands.send(Command::Dial(address.clone())).await;
        }
    }
}

impl Services {
    /// Joins the field whose (signed) charter is at `charter`; it counts from the next
    /// handshake on. Returns the field.
    pub async fn join_field(&self, charter: &Path) -> Result<Arc<Field>, HoldingError> {
        let charter = std::fs::canonicalize(charter).unwrap_or_else(|_| charter.to_owned());
        let field = Field::load(&charter).map_err(|source| HoldingError::Field {
            path: charter.clone(),
            source,
        })?;
        self.governance.add_field(&field.charter);
        let field = self.fields.join(field, charter).await?;
        self.facts_changed.fields();
        Ok(field)
    }

    /// Leaves the field `id` (or an unambiguous prefix, among active and disabled fields):
    /// this gateway stops gossiping, answering and judging peers there. Governance ops and
    /// records it held stay in the store, should it join again. `None` if no field matches.
    pub fn leave_field(&self, id: &str) -> Result<Option<String>, HoldingError> {
        let mut ids: Vec<String> = self
            .fields
            .all()
            .iter()
            .map(|field| field.charter.field_id())
            .chain(self.fields.disabled().into_iter().map(|field| field.id))
            .filter(|known| !id.is_empty() && known.starts_with(id))
            .collect();
        ids.dedup();
        let [id] = ids.as_slice() else {
            return Ok(None);
        };
        if !self.fields.leave(id)? {
            return Ok(None);
        }
        self.facts_changed.fields();
        Ok(Some(id.clone()))
    }

    /// Adds one of the organisation's own credentials to the wallet after checking it: it
    /// must verify and name this organisation as its subject. A credential whose status list
    /// is not held yet is taken (verifiers judge its status with their own lists); a revoked
    /// or suspended one is refused.
    pub async fn import_credential(&self, token: &str) -> Result<VerifiedCredential, HoldingError> {
        let credential = self
            .with_status_lists(|status_lists| {
                let context = VerifyContext {
                    now: now_unix(),
                    trust: None,
                    status_lists,
                    status_max_age_secs: crate::credential::DEFAULT_STATUS_MAX_AGE_SECS,
                };
                let verifier = CredentialVerifier::new();
                let credential = verifier.verify_credential_before_status(token, &context)?;
                match verifier.check_credential_status(&credential, &context) {
                    Err(error) if error.code != ErrorCode::StatusUnavailable => Err(error),
                    _ => Ok(credential),
                }
            })
            .map_err(HoldingError::Wallet)?;
        if credential.subject != self.key.did() {
            return Err(HoldingError::Wallet(VerificationError::new(
                ErrorCode::HolderMismatch,
                format!(
                    "the credential was issued to {}, not to this organisation",
                    credential.subject
                ),
            )));
        }
        if !self.wallet.add(&credential.id, token.trim()).await? {
            return Err(HoldingError::Duplicate(credential.id));
        }
        Ok(credential)
    }

    /// The joined fields whose charter (as governance amended it) trusts `issuer` for
    /// `type_name`: where a credential of ours from that issuer counts. Empty: nowhere.
    pub fn fields_trusting_for(&self, issuer: &str, type_name: &str) -> Vec<String> {
        self.fields
            .all()
            .iter()
            .filter(|field| {
                self.effective_charter(field)
                    .issuer_trust()
                    .is_trusted(issuer, type_name)
            })
            .map(|field| field.charter.field_id())
            .collect()
    }
}
