//! Status list intake: Bitstring Status List credentials arrive by file (the API), by gossip
//! on `tfc/<field-id>/status` and by anti-entropy. Each is verified, kept only if an issuer
//! some joined field trusts signed it, stored, and replaces an older issue of the same list.
//! A change wakes the handshake service, which re-judges the peers it knows.

use serde::{Deserialize, Serialize};

use crate::credential::{CredentialVerifier, ErrorCode, StatusList, VerificationError, now_unix};
use crate::field::Field;
use crate::services::Services;
use crate::store::{StoreError, Stored, Tree};

/// A status list credential as kept in the `status_lists` tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredStatusList {
    token: String,
    issuer: String,
    issued_at: i64,
}

impl Stored for StoredStatusList {
    const VERSION: u8 = 1;
}

/// Why a status list was not taken.
#[derive(Debug, thiserror::Error)]
pub enum StatusIntakeError {
    /// It does not verify, or no joined field trusts its issuer.
    #[error("{0}")]
    Invalid(VerificationError),
    /// It could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StatusIntakeError {
    /// A stable machine code.
    pub fn code(&self) -> &str {
        match self {
            StatusIntakeError::Invalid(error) => error.code.as_str(),
            StatusIntakeError::Store(error) => error.code(),
        }
    }
}

/// What intake did with a valid list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// It is new, or newer than the issue held: stored and in force.
    Taken(StatusListSummary),
    /// The same or a newer issue was already held.
    Unchanged(StatusListSummary),
}

/// A status list, described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusListSummary {
    /// The list credential's id.
    pub id: String,
    /// Its issuer.
    pub issuer: String,
    /// `revocation` or `suspension`.
    pub purpose: String,
    /// Its `validFrom` (Unix seconds).
    pub issued_at: i64,
    /// How many entries are set.
    pub set_entries: usize,
}

impl StatusListSummary {
    fn of(list: &StatusList) -> Self {
        Self {
            id: list.id.clone(),
            issuer: list.issuer.clone(),
            purpose: list.purpose.as_str().to_owned(),
            issued_at: list.issued_at,
            set_entries: list.set_indices().len(),
        }
    }
}

fn trusted_by(field: &Field, issuer: &str) -> bool {
    field
        .charter
        .issuers
        .iter()
        .any(|entry| entry.did == issuer)
}

impl Services {
    /// Verifies a status list credential and takes it if it is new and an issuer a joined
    /// field trusts signed it. A taken list wakes re-evaluation of known peers.
    pub fn import_status_list(&self, token: &str) -> Result<Intake, StatusIntakeError> {
        let token = token.trim();
        let list = CredentialVerifier::new()
            .verify_status_list(token, now_unix())
            .map_err(StatusIntakeError::Invalid)?;
        if !self
            .fields
            .all()
            .iter()
            .any(|field| trusted_by(field, &list.issuer))
        {
            return Err(StatusIntakeError::Invalid(VerificationError::new(
                ErrorCode::UntrustedIssuer,
                format!(
                    "no joined field trusts {}, the issuer of status list {}",
                    list.issuer, list.id
                ),
            )));
        }
        let summary = StatusListSummary::of(&list);
        let stored = StoredStatusList {
            token: token.to_owned(),
            issuer: list.issuer.clone(),
            issued_at: list.issued_at,
        };
        let tree = self.store.tree(Tree::StatusLists)?;
        let taken = match self.status_lists.write() {
            Ok(mut lists) => {
                let newer = lists
                    .get(&list.id)
                    .is_none_or(|held| held.issued_at < list.issued_at);
                if newer {
                    // Stored with it in force; on disk at the acknowledging caller's commit.
                    tree.put(list.id.as_bytes(), &stored)?;
                    lists.insert(list);
                }
                newer
            }
            Err(_) => false,
        };
        if !taken {
            return Ok(Intake::Unchanged(summary));
        }
        tracing::info!(list = %summary.id, issuer = %summary.issuer, set = summary.set_entries, "status list taken");
        self.facts_changed.everyone();
        Ok(Intake::Taken(summary))
    }

    /// Reloads the stored status lists at start. One that no longer verifies (expired) is
    /// dropped; the credentials it covers are then `status_unavailable` until a fresh issue
    /// arrives.
    pub fn restore_status_lists(&self) -> Result<usize, StoreError> {
        let tree = self.store.tree(Tree::StatusLists)?;
        let verifier = CredentialVerifier::new();
        let now = now_unix();
        let mut restored = 0;
        let Ok(mut lists) = self.status_lists.write() else {
            return Ok(0);
        };
        for (key, stored) in tree.entries::<StoredStatusList>()? {
            match verifier.verify_status_list(&stored.token, now) {
                Ok(list) => {
                    lists.insert(list);
                    restored += 1;
                }
                Err(error) => {
                    tracing::warn!(code = %error.code, %error.message, "stored status list dropped");
                    tree.remove(&key)?;
                }
            }
        }
        Ok(restored)
    }

    /// The status lists held whose issuer `field` trusts: (list id, validFrom, token).
    pub fn status_lists_for(
        &self,
        field: &Field,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(self
            .store
            .tree(Tree::StatusLists)?
            .entries::<StoredStatusList>()?
            .into_iter()
            .filter(|(_, stored)| trusted_by(field, &stored.issuer))
            .filter_map(|(key, stored)| {
                let id = String::from_utf8(key).ok()?;
                Some((id, stored.issued_at, stored.token))
            })
            .collect())
    }

    /// Every status list in force, described.
    pub fn status_list_summaries(&self) -> Vec<StatusListSummary> {
        self.with_status_lists(|lists| lists.iter().map(StatusListSummary::of).collect())
    }

    /// The joined fields that trust `issuer`.
    pub fn fields_trusting(&self, issuer: &str) -> Vec<String> {
        self.fields
            .all()
            .iter()
            .filter(|field| trusted_by(field, issuer))
            .map(|field| field.charter.field_id())
            .collect()
    }
}
