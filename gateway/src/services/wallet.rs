//! The wallet: the organisation's own credentials, kept in the `wallet` tree and read by the
//! handshake when it presents. The charter's disclosure rules decide what leaves it
//! (`charter::disclosure`, applied by the negotiation); the wallet hands out only the types
//! asked for.

use std::collections::BTreeSet;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, StoreTree, Stored, Tree};

/// A credential in the `wallet` tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WalletEntry {
    token: String,
}

impl Stored for WalletEntry {
    const VERSION: u8 = 1;
}

/// The organisation's credentials (compact vc+jwt), in memory and on disk.
pub struct Wallet {
    tree: StoreTree,
    tokens: RwLock<Vec<String>>,
    /// The legal name in our identity credential, read once per change: the audit and the
    /// API name us often.
    own_name: RwLock<Option<String>>,
}

impl Wallet {
    /// A wallet holding `tokens`, adding to the `wallet` tree of `store`.
    pub fn new(store: &Store, tokens: Vec<String>) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(Tree::Wallet)?,
            own_name: RwLock::new(legal_name(&tokens)),
            tokens: RwLock::new(tokens),
        })
    }

    /// The credentials kept in `store`'s `wallet` tree.
    pub fn stored(store: &Store) -> Result<Vec<String>, StoreError> {
        Ok(store
            .tree(Tree::Wallet)?
            .entries::<WalletEntry>()?
            .into_iter()
            .map(|(_, entry)| entry.token)
            .collect())
    }

    /// Every credential, as of now. A poisoned lock reads as an empty wallet: nothing is
    /// presented.
    pub fn all(&self) -> Vec<String> {
        self.tokens
            .read()
            .map(|tokens| tokens.clone())
            .unwrap_or_default()
    }

    /// The credentials of `types`, as `(type, token)`.
    pub fn credentials_of(&self, types: &BTreeSet<String>) -> Vec<(String, String)> {
        self.all()
            .into_iter()
            .filter_map(|token| {
                let type_name = crate::credential::credential_type(&token)?;
                types.contains(&type_name).then_some((type_name, token))
            })
            .collect()
    }

    /// The organisation's legal name, from the identity credential it holds, if any.
    pub fn own_name(&self) -> Option<String> {
        self.own_name.read().ok()?.clone()
    }

    /// Keeps a checked credential under its id; it counts once it is on disk. `false`: the
    /// wallet already holds a credential with this id, and nothing changed.
    pub async fn add(&self, id: &str, token: &str) -> Result<bool, StoreError> {
        let holds = |tokens: &[String]| {
            tokens
                .iter()
                .any(|held| crate::threats::effects::credential_id(held).as_deref() == Some(id))
        };
        if holds(&self.all()) {
            return Ok(false);
        }
        let entry = WalletEntry {
            token: token.to_owned(),
        };
        self.tree.put_durable(id.as_bytes(), &entry).await?;
        // Two imports of one credential may both get here: it is kept once.
        if let Ok(mut tokens) = self.tokens.write()
            && !holds(&tokens)
        {
            tokens.push(entry.token);
            if let Ok(mut name) = self.own_name.write() {
                *name = legal_name(&tokens);
            }
        }
        Ok(true)
    }
}

/// The legal name in the first identity credential among `tokens`.
fn legal_name(tokens: &[String]) -> Option<String> {
    tokens.iter().find_map(|token| {
        let payload = crate::credential::unverified_payload(token)?;
        let identity =
            payload.get("type")?.get(1)?.as_str()? == crate::charter::disclosure::IDENTITY_TYPE;
        let name = payload
            .get("credentialSubject")?
            .get("legalName")?
            .as_str()?;
        identity.then(|| name.to_owned())
    })
}
