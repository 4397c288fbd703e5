//! Slicing a policy set by action and resource scope.
//!
//! Cedar evaluates every policy of the set it is given, about 1.2 µs each. A policy whose
//! scope cannot match a request is never satisfied and raises no error (scope constraints
//! are checked before conditions), so leaving it out changes neither the decision nor the
//! determining policies. The index keeps, for each request, only the policies whose action
//! and resource scopes can match it; slices are cached by their membership.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, Policy, PolicySet, ResourceConstraint, Schema,
};

/// Cached slices kept before the cache is emptied.
const SLICE_CACHE_CAPACITY: usize = 4096;

/// Which actions a policy's scope admits: one bit per schema action, so that filtering a
/// slice costs a bit test rather than hashing an entity uid per policy.
type ActionMask = u128;

/// The policies of a set, indexed by action and resource scope.
pub(super) struct PolicyIndex {
    policies: Vec<Policy>,
    /// The bit of each schema action; actions past the 128th share the last bit, which only
    /// makes slices larger, never smaller.
    action_bits: HashMap<EntityUid, ActionMask>,
    actions: Vec<ActionMask>,
    any_resource: Vec<usize>,
    by_resource_uid: HashMap<EntityUid, Vec<usize>>,
    by_resource_type: HashMap<EntityTypeName, Vec<usize>>,
    slices: Mutex<HashMap<Vec<usize>, Arc<PolicySet>>>,
}

impl PolicyIndex {
    /// Indexes `set`. Action groups are resolved through the schema, so a policy scoped to a
    /// group matches each of the group's actions.
    pub(super) fn new(set: &PolicySet, schema: &Schema) -> Self {
        let action_ancestors = action_ancestors(schema);
        let action_bits: HashMap<EntityUid, ActionMask> = action_ancestors
            .keys()
            .enumerate()
            .map(|(position, action)| (action.clone(), 1 << position.min(127)))
            .collect();
        let mut index = Self {
            policies: Vec::new(),
            action_bits,
            actions: Vec::new(),
            any_resource: Vec::new(),
            by_resource_uid: HashMap::new(),
            by_resource_type: HashMap::new(),
            slices: Mutex::new(HashMap::new()),
        };
        for (position, policy) in set.policies().enumerate() {
            let mask = action_mask(policy, &action_ancestors, &index.action_bits);
            index.actions.push(mask);
            match policy.resource_constraint() {
                ResourceConstraint::Any => index.any_resource.push(position),
                ResourceConstraint::Eq(uid)
                | ResourceConstraint::In(uid)
                | ResourceConstraint::IsIn(_, uid) => {
                    index.by_resource_uid.entry(uid).or_default().push(position);
                }
                ResourceConstraint::Is(type_name) => {
                    index
                        .by_resource_type
                        .entry(type_name)
                        .or_default()
                        .push(position);
                }
            }
            index.policies.push(policy.clone());
        }
        index
    }

    /// The policies that can apply to a request on `resource` (with `ancestors`, of type
    /// `resource_type`) by `action`.
    pub(super) fn slice(
        &self,
        action: &EntityUid,
        resource: &EntityUid,
        ancestors: &[EntityUid],
        resource_type: &EntityTypeName,
    ) -> Arc<PolicySet> {
        let mut members: Vec<usize> = self.any_resource.clone();
        for uid in std::iter::once(resource).chain(ancestors) {
            members.extend(self.by_resource_uid.get(uid).into_iter().flatten());
        }
        members.extend(
            self.by_resource_type
                .get(resource_type)
                .into_iter()
                .flatten(),
        );
        // An action outside the schema matches no scoped policy, only unscoped ones.
        let bit = self.action_bits.get(action).copied().unwrap_or(0);
        members.retain(|&position| {
            self.actions[position] == ActionMask::MAX || self.actions[position] & bit != 0
        });
        members.sort_unstable();
        members.dedup();
        if let Ok(slices) = self.slices.lock()
            && let Some(slice) = slices.get(&members)
        {
            return Arc::clone(slice);
        }
        let slice = Arc::new(self.build(&members));
        if let Ok(mut slices) = self.slices.lock() {
            if slices.len() >= SLICE_CACHE_CAPACITY {
                slices.clear();
            }
            slices.insert(members, Arc::clone(&slice));
        }
        slice
    }

    fn build(&self, members: &[usize]) -> PolicySet {
        let mut set = PolicySet::new();
        for &position in members {
            // Ids are unique in the source set, so adding cannot clash.
            if set.add(self.policies[position].clone()).is_err() {
                return self.full();
            }
        }
        set
    }

    fn full(&self) -> PolicySet {
        PolicySet::from_policies(self.policies.iter().cloned()).unwrap_or_default()
    }

    /// How many policies the index holds.
    pub(super) fn len(&self) -> usize {
        self.policies.len()
    }
}

/// Every action of the schema with the groups it belongs to (itself included).
fn action_ancestors(schema: &Schema) -> HashMap<EntityUid, HashSet<EntityUid>> {
    let Ok(entities) = schema.action_entities() else {
        return HashMap::new();
    };
    entities
        .iter()
        .map(|entity| {
            let uid = entity.uid();
            let mut groups: HashSet<EntityUid> = entities
                .ancestors(&uid)
                .map(|ancestors| ancestors.cloned().collect())
                .unwrap_or_default();
            groups.insert(uid.clone());
            (uid, groups)
        })
        .collect()
}

/// The bits of the actions a policy's scope admits; `ActionMask::MAX` for any action.
fn action_mask(
    policy: &Policy,
    action_ancestors: &HashMap<EntityUid, HashSet<EntityUid>>,
    action_bits: &HashMap<EntityUid, ActionMask>,
) -> ActionMask {
    let listed: Vec<EntityUid> = match policy.action_constraint() {
        ActionConstraint::Any => return ActionMask::MAX,
        ActionConstraint::Eq(uid) => vec![uid],
        ActionConstraint::In(uids) => uids,
    };
    // `action in [G]` admits every action whose groups include G; `action == A` only A
    // (an action's groups include itself).
    let exact = matches!(policy.action_constraint(), ActionConstraint::Eq(_));
    action_ancestors
        .iter()
        .filter(|(action, groups)| {
            if exact {
                listed.contains(action)
            } else {
                listed.iter().any(|uid| groups.contains(uid))
            }
        })
        .filter_map(|(action, _)| action_bits.get(action))
        .fold(0, |mask, bit| mask | bit)
}
