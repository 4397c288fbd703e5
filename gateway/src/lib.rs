//! The TFC gateway library: organisation identity, verifiable credentials, charters, tiers,
//! policy, governance, data spaces, threats and audit; the daemon that runs them; and
//! `localnet`, real gateways on loopback for the demo and the system tests.
//!
//! Domain logic here is pure: it takes the current time as an argument and touches no
//! network or disk except where a function says so (key files, charter files).
//!
//! ```
//! use tfc_gateway::credential::{CredentialDraft, CredentialVerifier, StatusLists, VerifyContext, issue_credential};
//! use tfc_gateway::identity::{KeyAlgorithm, KeyPair};
//!
//! let bureau = KeyPair::generate(KeyAlgorithm::Ed25519);
//! let holder = KeyPair::generate(KeyAlgorithm::Ed25519);
//! let claims = serde_json::json!({"grade": "B", "score": 72, "assessedOn": "2026-04-01"});
//! let draft = CredentialDraft {
//!     type_name: "CreditRatingCredential".into(),
//!     subject: holder.did(),
//!     claims: claims.as_object().unwrap().clone(),
//!     valid_from: 1_767_225_600,
//!     valid_until: Some(1_798_761_600),
//!     status: vec![],
//! };
//! let token = issue_credential(&bureau, &draft, 1_767_225_600).unwrap();
//! let lists = StatusLists::new();
//! let context = VerifyContext { now: 1_780_000_000, trust: None, status_lists: &lists, status_max_age_secs: 86_400 };
//! let credential = CredentialVerifier::new().verify_credential(&token, &context).unwrap();
//! assert_eq!(credential.issuer, bureau.did());
//! ```
#![deny(missing_docs, unreachable_pub)]

pub mod allocator;
pub mod api;
pub mod audit;
pub mod charter;
pub mod config;
pub mod credential;
pub mod daemon;
pub mod demo;
pub mod disclosure;
pub mod exchange;
pub mod field;
pub mod governance;
pub mod handshake;
pub mod hex;
pub mod identity;
pub mod init;
pub mod lifecycle;
pub mod localnet;
pub mod metrics;
pub mod negotiation;
pub mod net;
pub mod policy;
pub mod roles;
pub mod secret_file;
pub mod services;
pub mod spaces;
pub mod store;
pub mod text;
pub mod threats;
pub mod tier;
pub mod tls;
pub mod webhooks;
