use std::collections::BTreeMap;

use super::state::Via;
use super::*;
use crate::charter::Charter;
use crate::identity::KeyAlgorithm;
use crate::store::Store;

const NOW: i64 = 1_800_000_000;

struct Field {
    founders: Vec<KeyPair>,
    admin: KeyPair,
    charter: Charter,
}

/// Three founders, quorum 2, and an admin who is not a founder.
fn field() -> Field {
    let founders: Vec<KeyPair> = (0..3)
        .map(|_| KeyPair::generate(KeyAlgorithm::Ed25519))
        .collect();
    let admin = KeyPair::generate(KeyAlgorithm::Ed25519);
    let list = founders
        .iter()
        .map(|key| format!("\"{}\"", key.did()))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "name = \"g\"\nfounders = [{list}]\nadmins = [\"{}\"]\nquorum = 2\n",
        admin.did()
    );
    let charter = Charter::parse(&text, std::path::Path::new(".")).unwrap();
    Field {
        founders,
        admin,
        charter,
    }
}

impl Field {
    fn op(&self, kind: OpKind, target: &str, epoch: u64, proposer: &KeyPair) -> SignedOp {
        let op = Op {
            kind,
            field: self.charter.field_id(),
            target: target.into(),
            reason: "test".into(),
            epoch,
            proposer: proposer.did(),
            created: NOW,
            types: if kind == OpKind::TrustIssuer {
                vec!["CreditRatingCredential".into()]
            } else {
                vec![]
            },
            policy: None,
        };
        SignedOp::propose(op, proposer).unwrap()
    }

    fn governance(&self) -> Governance {
        Governance::load(Store::temporary().unwrap(), &[&self.charter]).unwrap()
    }

    fn state_of(&self, ops: &[SignedOp]) -> FieldState {
        let held: BTreeMap<String, SignedOp> = ops
            .iter()
            .map(|op| (op.verify(NOW).unwrap(), op.clone()))
            .collect();
        FieldState::derive(&self.charter, &held)
    }
}

fn newcomer() -> String {
    KeyPair::generate(KeyAlgorithm::Ed25519).did()
}

#[test]
fn admission_needs_the_quorum_of_distinct_members() {
    let field = field();
    let target = newcomer();
    let mut admit = field.op(OpKind::Admit, &target, 1, &field.founders[0]);
    let pending = field.state_of(std::slice::from_ref(&admit));
    assert_eq!(pending.standing(&target), None);
    let id = admit.verify(NOW).unwrap();
    assert_eq!(pending.progress[&id].signatures, 1);
    assert_eq!(pending.progress[&id].required, 2);
    // A stranger's signature does not count.
    admit
        .sign(&KeyPair::generate(KeyAlgorithm::Ed25519))
        .unwrap();
    assert_eq!(
        field
            .state_of(std::slice::from_ref(&admit))
            .standing(&target),
        None
    );
    admit.sign(&field.founders[1]).unwrap();
    let state = field.state_of(&[admit]);
    assert_eq!(state.standing(&target), Some(StandingKind::Member));
    assert_eq!(state.progress[&id].committed, Some(Via::Quorum));
    assert_eq!(state.in_good_standing().count(), 5);
}

#[test]
fn an_admin_alone_commits_revoke_and_suspend_but_nothing_else() {
    let field = field();
    let member = field.founders[2].did();
    let revoke = field.op(OpKind::Revoke, &member, 1, &field.admin);
    let state = field.state_of(std::slice::from_ref(&revoke));
    assert_eq!(state.standing(&member), Some(StandingKind::Revoked));
    assert_eq!(
        state.progress[&revoke.verify(NOW).unwrap()].committed,
        Some(Via::Admin)
    );
    let target = newcomer();
    let admit = field.op(OpKind::Admit, &target, 1, &field.admin);
    assert_eq!(field.state_of(&[admit]).standing(&target), None);
    // A founder who is not an admin cannot take the emergency path.
    let suspend = field.op(OpKind::Suspend, &member, 1, &field.founders[0]);
    assert_eq!(
        field.state_of(&[suspend]).standing(&member),
        Some(StandingKind::Founder)
    );
}

#[test]
fn revoke_wins_at_equal_epochs_and_only_a_later_reinstate_lifts_it() {
    let field = field();
    let target = newcomer();
    let mut admit = field.op(OpKind::Admit, &target, 1, &field.founders[0]);
    admit.sign(&field.founders[1]).unwrap();
    let mut readmit = field.op(OpKind::Admit, &target, 2, &field.founders[1]);
    readmit.sign(&field.founders[2]).unwrap();
    let revoke = field.op(OpKind::Revoke, &target, 2, &field.admin);
    let state = field.state_of(&[admit.clone(), readmit.clone(), revoke.clone()]);
    assert_eq!(state.standing(&target), Some(StandingKind::Revoked));
    let mut same_epoch = field.op(OpKind::Reinstate, &target, 2, &field.founders[0]);
    same_epoch.sign(&field.founders[1]).unwrap();
    let mut later = field.op(OpKind::Reinstate, &target, 3, &field.founders[0]);
    let ops = [admit, readmit, revoke, same_epoch];
    assert_eq!(
        field.state_of(&ops).standing(&target),
        Some(StandingKind::Revoked)
    );
    let mut with_later = ops.to_vec();
    with_later.push(later.clone());
    assert_eq!(
        field.state_of(&with_later).standing(&target),
        Some(StandingKind::Revoked),
        "a reinstate needs a quorum"
    );
    later.sign(&field.founders[2]).unwrap();
    with_later.pop();
    with_later.push(later);
    assert_eq!(
        field.state_of(&with_later).standing(&target),
        Some(StandingKind::Member)
    );
}

#[test]
fn a_revoked_members_signature_stops_counting() {
    let field = field();
    let revoked = &field.founders[2];
    let revoke = field.op(OpKind::Revoke, &revoked.did(), 1, &field.admin);
    let target = newcomer();
    let mut admit = field.op(OpKind::Admit, &target, 2, revoked);
    admit.sign(&field.founders[0]).unwrap();
    assert_eq!(
        field.state_of(&[revoke, admit]).standing(&target),
        None,
        "the proposer is revoked"
    );
}

#[test]
fn the_state_does_not_depend_on_arrival_order() {
    let field = field();
    let (a, b) = (newcomer(), newcomer());
    let mut ops = vec![field.op(OpKind::Admit, &a, 1, &field.founders[0])];
    ops[0].sign(&field.founders[1]).unwrap();
    ops.push(field.op(OpKind::Revoke, &a, 1, &field.admin));
    let mut admit_b = field.op(OpKind::Admit, &b, 1, &field.founders[2]);
    admit_b.sign(&field.founders[0]).unwrap();
    ops.push(admit_b);
    let mut quorum = field.op(OpKind::SetQuorum, "3", 1, &field.founders[0]);
    quorum.sign(&field.founders[1]).unwrap();
    ops.push(quorum);
    let expected = field.state_of(&ops);
    assert_eq!(expected.standing(&a), Some(StandingKind::Revoked));
    assert_eq!(expected.quorum, crate::charter::Quorum::Count(3));
    for rotation in 0..ops.len() {
        let governance = field.governance();
        let mut order = ops.clone();
        order.rotate_left(rotation);
        order.reverse();
        for op in order {
            governance.intake(&field.charter, op, NOW).unwrap();
        }
        assert_eq!(
            governance.state(&field.charter.field_id()).unwrap(),
            expected
        );
    }
}

#[test]
fn bad_ops_are_refused_with_a_code_and_change_nothing() {
    let field = field();
    let governance = field.governance();
    let id = field.charter.field_id();
    let before = governance.state(&id).unwrap();
    let target = newcomer();
    let good = field.op(OpKind::Revoke, &target, 1, &field.founders[0]);
    let code = |op: SignedOp| governance.intake(&field.charter, op, NOW).unwrap_err().code;

    let mut forged = good.clone();
    forged.op.reason = "edited after signing".into();
    assert_eq!(code(forged), GovCode::Forged);
    let mut unsigned = good.clone();
    unsigned.signatures.clear();
    assert_eq!(code(unsigned), GovCode::Forged);
    let mut wrong_field = good.clone();
    wrong_field.op.field = "0".repeat(64);
    assert_eq!(code(wrong_field), GovCode::WrongField);
    let mut stale = field.op(OpKind::Revoke, &target, 1, &field.founders[0]);
    stale.op.created = NOW - MAX_OP_AGE_SECS - 1;
    let stale = SignedOp::propose(stale.op, &field.founders[0]).unwrap();
    assert_eq!(code(stale), GovCode::Stale);
    let mut malformed = field.op(OpKind::Admit, "not a did", 1, &field.founders[0]);
    malformed.op.epoch = 1;
    assert_eq!(code(malformed), GovCode::Malformed);
    for quorum in ["most", "0", "0/3", "5/3", "1/0"] {
        assert_eq!(
            code(field.op(OpKind::SetQuorum, quorum, 1, &field.founders[0])),
            GovCode::Malformed,
            "set-quorum {quorum}"
        );
    }
    assert_eq!(governance.state(&id).unwrap(), before);

    governance
        .intake(&field.charter, good.clone(), NOW)
        .unwrap();
    assert_eq!(code(good), GovCode::Replayed);
}

#[test]
fn trusted_issuers_follow_committed_ops() {
    let field = field();
    let issuer = newcomer();
    let mut trust = field.op(OpKind::TrustIssuer, &issuer, 1, &field.founders[0]);
    trust.sign(&field.founders[1]).unwrap();
    let state = field.state_of(std::slice::from_ref(&trust));
    assert!(state.issuers.iter().any(|entry| entry.did == issuer));
    let mut distrust = field.op(OpKind::DistrustIssuer, &issuer, 2, &field.founders[0]);
    distrust.sign(&field.founders[2]).unwrap();
    let state = field.state_of(&[trust, distrust]);
    assert!(!state.issuers.iter().any(|entry| entry.did == issuer));
}

#[test]
fn an_amended_policy_must_compile_and_match_its_hash() {
    let field = field();
    let proposer = &field.founders[0];
    let amend = |policy: &str, target: String| {
        let mut op = field.op(OpKind::AmendPolicy, &target, 1, proposer);
        op.op.policy = Some(policy.to_owned());
        SignedOp::propose(op.op, proposer).unwrap()
    };
    let good = "permit(principal, action, resource) when { false };";
    assert!(amend(good, sha256_hex(good.as_bytes())).verify(NOW).is_ok());
    let wrong_hash = amend(good, sha256_hex(b"other"));
    assert_eq!(wrong_hash.verify(NOW).unwrap_err().code, GovCode::Malformed);
    let broken = "permit(principal, action";
    let error = amend(broken, sha256_hex(broken.as_bytes()))
        .verify(NOW)
        .unwrap_err();
    assert_eq!(error.code, GovCode::Malformed);
    assert!(error.message.contains("amended policy"), "{error}");
}

#[test]
fn revoking_suspending_or_reinstating_a_non_member_is_refused() {
    let field = field();
    let governance = field.governance();
    let id = field.charter.field_id();
    let propose = |kind: OpKind, target: &str| {
        governance.propose(
            &field.charter,
            &field.admin,
            kind,
            target.to_owned(),
            "test".into(),
            vec![],
            None,
            NOW,
        )
    };
    let stranger = newcomer();
    for kind in [OpKind::Revoke, OpKind::Suspend, OpKind::Reinstate] {
        let refused = governance
            .check_target(&id, kind, &stranger, false)
            .unwrap_err();
        assert_eq!(refused.code, GovCode::NotAMember, "{kind}");
        assert!(refused.message.contains(&stranger), "{}", refused.message);
    }
    // An applicant this gateway judged in the field may be barred, not reinstated.
    governance
        .check_target(&id, OpKind::Suspend, &stranger, true)
        .unwrap();
    assert!(
        governance
            .check_target(&id, OpKind::Reinstate, &stranger, true)
            .is_err()
    );
    // A founder in good standing is no one to reinstate; once revoked, no one to revoke
    // again, and someone to reinstate.
    let member = field.founders[2].did();
    let check = |kind| governance.check_target(&id, kind, &member, false);
    assert_eq!(
        check(OpKind::Reinstate).unwrap_err().code,
        GovCode::NotAMember
    );
    check(OpKind::Suspend).unwrap();
    propose(OpKind::Revoke, &member).unwrap();
    assert_eq!(check(OpKind::Revoke).unwrap_err().code, GovCode::NotAMember);
    check(OpKind::Reinstate).unwrap();
}
