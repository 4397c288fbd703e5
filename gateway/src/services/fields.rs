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

/// A joined field whose charter could not be loaded at start: disabled, alone, until its
/// charter is back (and the gateway restarted) or the field is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisabledField {
    /// The field id.
    pub id: String,
    /// Where its charter should be.
    #[schema(value_type = String)]
    pub charter: PathBuf,
    /// The loading error's code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The fields this gateway takes part in.
pub struct FieldBook {
    tree: StoreTree,
    fields: RwLock<Vec<Arc<Field>>>,
    disabled: RwLock<Vec<DisabledField>>,
    /// Policies amended by governance, compiled, by SHA-256 of their text.
    amended_policies: Mutex<HashMap<String, Arc<PolicyEngine>>>,
}

impl FieldBook {
    /// A book holding `fields`, adding to the `fields` tree of `store`.
    pub fn new(store: &Store, fields: Vec<Field>) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(Tree::Fields)?,
            fields: RwLock::new(fields.into_iter().map(Arc::new).collect()),
            disabled: RwLock::new(Vec::new()),
            amended_policies: Mutex::new(HashMap::new()),
        })
    }

    /// The fields kept in `store`: each id with its charter file.
    pub fn stored(store: &Store) -> Result<Vec<(String, PathBuf)>, StoreError> {
        Ok(store
            .tree(Tree::Fields)?
            .entries::<JoinedField>()?
            .into_iter()
            .map(|(id, joined)| (String::from_utf8_lossy(&id).into_owned(), joined.charter))
            .collect())
    }

    /// Records the joined fields whose charter could not be loaded at start.
    pub fn set_disabled(&self, disabled: Vec<DisabledField>) {
        if let Ok(mut held) = self.disabled.write() {
            *held = disabled;
        }
    }

    /// The joined fields whose charter could not be loaded.
    pub fn disabled(&self) -> Vec<DisabledField> {
        self.disabled
            .read()
            .map(|disabled| disabled.clone())
            .unwrap_or_default()
    }

    /// Leaves the field `id` (active or disabled); whoever acknowledges it commits the store
    /// first. `false` if no joined field has that id.
    pub fn leave(&self, id: &str) -> Result<bool, StoreError> {
        if !self.tree.take(id.as_bytes())? {
            return Ok(false);
        }
        if let Ok(mut fields) = self.fields.write() {
            fields.retain(|field| field.charter.field_id() != id);
        }
        if let Ok(mut disabled) = self.disabled.write() {
            disabled.retain(|field| field.id != id);
        }
        Ok(true)
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
        if let Ok(mut disabled) = self.disabled.write() {
            disabled.retain(|known| known.id != id);
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
