//! The fields joined: their charters, kept by path in the `fields` tree, and the policies
//! governance amended, compiled once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::field::Field;
use crate::policy::PolicyEngine;
use crate::store::{Store, StoreError, StoreTree, Stored, Tree};

/// A joined field, as kept in the `fields` tree: where its charter lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct JoinedField {
    charter: PathBuf,
}

impl Stored for JoinedField {
    const VERSION: u8 = 1;
}

/// The fields this gateway takes part in.
pub struct FieldBook {
    tree: StoreTree,
    fields: RwLock<Vec<Arc<Field>>>,
    /// Policies amended by governance, compiled, by SHA-256 of their text.
    amended_policies: Mutex<HashMap<String, Arc<PolicyEngine>>>,
}

impl FieldBook {
    /// A book holding `fields`, adding to the `fields` tree of `store`.
    pub fn new(store: &Store, fields: Vec<Field>) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(Tree::Fields)?,
            fields: RwLock::new(fields.into_iter().map(Arc::new).collect()),
            amended_policies: Mutex::new(HashMap::new()),
        })
    }

    /// The charter files of the fields kept in `store`.
    pub fn stored(store: &Store) -> Result<Vec<PathBuf>, StoreError> {
        Ok(store
            .tree(Tree::Fields)?
            .entries::<JoinedField>()?
            .into_iter()
            .map(|(_, joined)| joined.charter)
            .collect())
    }

    /// The fields joined, as of now (none if the lock is poisoned: nothing is shared).
    pub fn all(&self) -> Vec<Arc<Field>> {
        self.fields
            .read()
            .map(|fields| fields.clone())
            .unwrap_or_default()
    }

    /// The joined field with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Field>> {
        self.all()
            .into_iter()
            .find(|field| field.charter.field_id() == id)
    }

    /// Joins `field`, whose charter is at `charter`: it counts once it is on disk.
    pub async fn join(&self, field: Field, charter: PathBuf) -> Result<Arc<Field>, StoreError> {
        let id = field.charter.field_id();
        self.tree
            .put_durable(id.as_bytes(), &JoinedField { charter })
            .await?;
        let field = Arc::new(field);
        if let Ok(mut fields) = self.fields.write() {
            fields.retain(|known| known.charter.field_id() != id);
            fields.push(Arc::clone(&field));
        }
        Ok(field)
    }

    /// Forgets every field in memory (not on disk): for tests of a gateway that shares
    /// nothing.
    #[cfg(test)]
    pub(crate) fn forget_all(&self) {
        if let Ok(mut fields) = self.fields.write() {
            fields.clear();
        }
    }

    /// The engine for an amended policy's `text`, compiled once. `None` if it no longer
    /// compiles: every access is then denied.
    pub fn amended_policy(&self, text: &str) -> Option<Arc<PolicyEngine>> {
        let digest = crate::governance::sha256_hex(text.as_bytes());
        let mut compiled = self.amended_policies.lock().ok()?;
        if let Some(engine) = compiled.get(&digest) {
            return Some(Arc::clone(engine));
        }
        // Intake compiled it already; a failure here would mean the schema changed.
        match PolicyEngine::new(text) {
            Ok(engine) => {
                let engine = Arc::new(engine);
                compiled.insert(digest, Arc::clone(&engine));
                Some(engine)
            }
            Err(error) => {
                tracing::error!(%error, "the amended policy no longer compiles: every access is denied");
                None
            }
        }
    }
}
