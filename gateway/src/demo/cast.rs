//! The organisations of a demo field: their gateways on loopback, their issuing keys, the
//! charter they sign, and the helpers every scenario uses to act and to check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{DemoError, Story};
use crate::api::types::DataAnswer;
use crate::charter::Charter;
use crate::credential::{CredentialDraft, StatusLists, issue_credential, now_unix};
use crate::exchange::OpDraft;
use crate::governance::{OpKind, StandingKind};
use crate::handshake::GatewayEvent;
use crate::identity::{KeyAlgorithm, KeyPair};
use crate::localnet::{LocalGateway, top_tier, wait_until};
use crate::net::{DataRequest, DataResponse};
use crate::spaces::Record;
use crate::threats::engine::State;
use crate::threats::{IndicatorDraft, compose};
use crate::tier::{RequirementStatus, TierContext, TierReport};

const DAY: i64 = 86_400;

/// One organisation: its gateway, and the key it issues credentials with (kept apart from
/// the gateway's key, as an issuer's signing key would be).
pub(super) struct Member {
    /// A short name for the narration.
    pub(super) name: &'static str,
    /// Its 法人番号.
    pub(super) corporate_number: String,
    /// Its issuing key.
    pub(super) issuer: KeyPair,
    /// Its running gateway.
    pub(super) node: LocalGateway,
}

/// Every organisation of a demo field, in cast order.
pub(super) struct Cast {
    /// The organisations.
    pub(super) members: Vec<Member>,
}

impl Cast {
    /// Starts one gateway per `(name, role)` under `root`, each configured by `configure`.
    pub(super) async fn start(
        root: &Path,
        roles: &[(&'static str, &'static str)],
        configure: fn(String) -> String,
        story: &mut Story,
    ) -> Result<Self, DemoError> {
        let mut members = Vec::new();
        for (index, (name, role)) in roles.iter().enumerate() {
            let node = LocalGateway::start(&root.join(name), configure).await?;
            story.say(&format!(
                "   {name:<12} {did}  {role}",
                did = abbreviate(&node.did)
            ));
            members.push(Member {
                name,
                corporate_number: corporate_number(index as u64 + 1)?,
                issuer: KeyPair::generate(KeyAlgorithm::Ed25519),
                node,
            });
        }
        Ok(Self { members })
    }

    /// The identity credential the registrar (`registrar`) issues to `holder`.
    pub(super) fn identity(&self, registrar: usize, holder: usize) -> Result<String, DemoError> {
        let member = &self.members[holder];
        issue(
            &self.members[registrar].issuer,
            &member.node.did,
            "OrganizationIdentityCredential",
            serde_json::json!({
                "corporateNumber": member.corporate_number,
                "legalName": format!("{} 株式会社", member.name),
                "address": "東京都千代田区霞が関1-1-1",
                "representative": "代表 太郎",
            }),
        )
    }

    /// Writes the charter from `template` (an example charter) with this field's DIDs, `policy`
    /// beside it, the first member's address as bootstrap, and every founder's signature.
    pub(super) fn write_charter(
        &self,
        root: &Path,
        template: &str,
        roles: &CharterRoles<'_>,
        policy: &str,
    ) -> Result<PathBuf, DemoError> {
        let failed = |message: String| DemoError::failed("writing the charter", message);
        let mut table: toml::Table = template
            .parse()
            .map_err(|error: toml::de::Error| failed(error.to_string()))?;
        table.remove("signatures");
        let dids = |indices: &[usize]| {
            toml::Value::Array(
                indices
                    .iter()
                    .map(|index| toml::Value::String(self.members[*index].node.did.clone()))
                    .collect(),
            )
        };
        table.insert("founders".into(), dids(roles.founders));
        table.insert("admins".into(), dids(roles.admins));
        table.insert("policy".into(), "policy.cedar".into());
        table.insert(
            "bootstrap".into(),
            toml::Value::Array(vec![self.members[0].node.address.to_string().into()]),
        );
        let issuers = table
            .get_mut("issuers")
            .and_then(toml::Value::as_array_mut)
            .ok_or_else(|| failed("the template lists no issuers".into()))?;
        for issuer in issuers.iter_mut().filter_map(toml::Value::as_table_mut) {
            let name = issuer
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or("");
            let member = roles
                .issuers
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix))
                .ok_or_else(|| failed(format!("no member issues as {name}")))?;
            issuer.insert("did".into(), self.members[member.1].issuer.did().into());
        }
        let text = toml::to_string(&table).map_err(|error| failed(error.to_string()))?;
        std::fs::write(root.join("policy.cedar"), policy)
            .map_err(|error| failed(error.to_string()))?;
        let mut signed = text.clone();
        for founder in roles.founders {
            let key = self.members[*founder].node.org_key()?;
            let charter =
                Charter::parse(&signed, root).map_err(|error| failed(error.to_string()))?;
            signed.push_str(
                &charter
                    .sign(&key)
                    .map_err(|error| failed(error.to_string()))?,
            );
        }
        let path = root.join("charter.toml");
        std::fs::write(&path, signed).map_err(|error| failed(error.to_string()))?;
        Ok(path)
    }

    /// Gateways `first` join the field, the first of them (the bootstrap peer) first;
    /// returns the field id.
    pub(super) async fn join(&self, charter: &Path, first: &[usize]) -> Result<String, DemoError> {
        self.join_only(charter, first).await?;
        self.members[0]
            .node
            .field_id()
            .ok_or_else(|| DemoError::failed("joining", "the field is not joined".into()))
    }

    /// Waits until `viewpoint` has judged every other member: the tier it gave each, or the
    /// refusal code. A member expected to be refused is awaited in the journal.
    pub(super) async fn screen(
        &self,
        viewpoint: usize,
        refused: &[usize],
    ) -> Result<Vec<Verdict>, DemoError> {
        let mut verdicts = Vec::new();
        for index in (0..self.members.len()).filter(|index| *index != viewpoint) {
            let peer = self.members[index].node.peer_id();
            let verdict = if refused.contains(&index) {
                let journal = &self.members[viewpoint].node.journal;
                let (_, code) = journal
                    .wait_from(0, "the refusal of a flagged member", |event| match event {
                        GatewayEvent::PeerRefused { peer: p, code, .. } if *p == peer => {
                            Some(code.clone())
                        }
                        _ => None,
                    })
                    .await?;
                Verdict {
                    member: index,
                    tier: 0,
                    refusal: Some(code),
                }
            } else {
                let node = &self.members[viewpoint].node;
                wait_until("a member is verified", Duration::from_millis(20), || {
                    let judged = node
                        .peer_record(peer)
                        .is_some_and(|record| top_tier(&record) >= 1);
                    async move { judged }
                })
                .await?;
                let tier = node.peer_record(peer).map_or(0, |record| top_tier(&record));
                Verdict {
                    member: index,
                    tier,
                    refusal: None,
                }
            };
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    /// Waits until every gateway in `members` has verified every other one in `field`:
    /// gossip from a member a gateway has not verified is refused there.
    pub(super) async fn until_mesh(&self, field: &str, members: &[usize]) -> Result<(), DemoError> {
        for a in members {
            for b in members.iter().filter(|b| *b != a) {
                let services = self.members[*a].node.gateway.services();
                let peer = self.members[*b].node.peer_id();
                wait_until(
                    "members verify each other",
                    Duration::from_millis(20),
                    || {
                        let verified = services.peer_verified_in(peer, field);
                        async move { verified }
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Waits until `viewpoint`'s gateway holds `member`'s identity credential in `field`: its
    /// handshake with `member` has come as far as what verified members are shown.
    pub(super) async fn until_identified(
        &self,
        viewpoint: usize,
        member: usize,
        field: &str,
    ) -> Result<(), DemoError> {
        let waited = wait_until(
            "a member's identity is shown",
            Duration::from_millis(20),
            || {
                let shown = self.holds(
                    viewpoint,
                    member,
                    field,
                    crate::charter::disclosure::IDENTITY_TYPE,
                );
                async move { shown }
            },
        )
        .await;
        waited.map_err(|error| {
            // Where the handshake stood says which side held back.
            let peer = self.members[member].node.peer_id();
            let record = self.members[viewpoint].node.peer_record(peer);
            DemoError::failed(
                &format!(
                    "{} to see {}'s identity",
                    self.members[viewpoint].name, self.members[member].name
                ),
                format!(
                    "{error}; its record of {}: {:?}",
                    self.members[member].name,
                    record.map(|record| (record.tiers, record.presented.keys().count()))
                ),
            )
        })
    }

    /// Whether `viewpoint`'s gateway holds a `type_name` that `member` presented in `field`.
    pub(super) fn holds(
        &self,
        viewpoint: usize,
        member: usize,
        field: &str,
        type_name: &str,
    ) -> bool {
        let peer = self.members[member].node.peer_id();
        self.members[viewpoint]
            .node
            .peer_record(peer)
            .is_some_and(|record| {
                record.credentials_in(field).iter().any(|token| {
                    crate::credential::credential_type(token).as_deref() == Some(type_name)
                })
            })
    }

    /// Joins the field's charter at `charter` for the gateways `which`, in order.
    pub(super) async fn join_only(&self, charter: &Path, which: &[usize]) -> Result<(), DemoError> {
        for index in which {
            self.members[*index].node.join(charter).await?;
        }
        Ok(())
    }

    /// The tier evaluation `viewpoint` makes of `tokens` in `field`, with its reasons.
    pub(super) fn evaluate(
        &self,
        viewpoint: usize,
        field: &str,
        tokens: &[String],
    ) -> Option<TierReport> {
        let services = self.members[viewpoint].node.gateway.services();
        let joined = services
            .fields
            .all()
            .into_iter()
            .find(|joined| joined.charter.field_id() == field)?;
        let charter = services.effective_charter(&joined);
        let verifier = crate::credential::CredentialVerifier::new();
        Some(services.with_status_lists(|status_lists: &StatusLists| {
            crate::tier::evaluate(
                &charter,
                &verifier,
                tokens,
                TierContext {
                    at: now_unix(),
                    status_lists,
                    holder: None,
                },
            )
        }))
    }

    /// `asker` sends `request` to `holder`'s gateway; returns its answer, or why no answer
    /// came (the connection is closed, for one).
    pub(super) async fn ask(
        &self,
        asker: usize,
        holder: usize,
        request: DataRequest,
    ) -> Result<DataResponse, String> {
        let peer = self.members[holder].node.peer_id();
        self.members[asker]
            .node
            .gateway
            .publisher()
            .request_data(peer, request)
            .await
            .map_err(|error| error.to_string())
    }

    /// Like [`Self::ask`], as an answer: no answer at all reads as a refusal `unreachable`.
    pub(super) async fn answer(
        &self,
        asker: usize,
        holder: usize,
        request: DataRequest,
    ) -> DataAnswer {
        match self.ask(asker, holder, request).await {
            Ok(response) => response.into(),
            Err(error) => DataAnswer {
                allowed: false,
                code: "unreachable".into(),
                reason: error,
                records: Vec::new(),
            },
        }
    }

    /// `asker` fetches attachment `sha256` of record `id` from `holder`, chunk by chunk: the
    /// content, or the refusal as an answer.
    pub(super) async fn fetch(
        &self,
        asker: usize,
        holder: usize,
        record: &Record,
        sha256: &str,
        purpose: &str,
    ) -> Result<Vec<u8>, DataAnswer> {
        use base64::Engine as _;
        let mut content = Vec::new();
        for index in 0..MAX_CHUNKS {
            let request = DataRequest::Chunk {
                field: record.field.clone(),
                tier: record.tier,
                id: record.id.clone(),
                sha256: sha256.to_owned(),
                index,
                purpose: purpose.to_owned(),
            };
            match self.ask(asker, holder, request).await {
                Ok(DataResponse::Chunk { data, last, .. }) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .map_err(|error| refusal("malformed", error.to_string()))?;
                    content.extend(bytes);
                    if last {
                        return Ok(content);
                    }
                }
                Ok(other) => return Err(other.into()),
                Err(error) => return Err(refusal("unreachable", error)),
            }
        }
        Err(refusal(
            "too_large",
            "more chunks than a demo drawing has".into(),
        ))
    }

    /// `reporter` publishes an indicator in `field`; returns the action id it groups under.
    pub(super) async fn report(
        &self,
        reporter: usize,
        field: &str,
        draft: &IndicatorDraft,
    ) -> Result<String, DemoError> {
        let failed = |message: String| DemoError::failed("publishing an indicator", message);
        let bundle = compose(draft, now_unix()).map_err(|error| failed(error.to_string()))?;
        let publication = self.members[reporter]
            .node
            .gateway
            .publisher()
            .publish_threat(field, bundle, Vec::new())
            .await
            .map_err(|error| failed(error.to_string()))?;
        publication
            .outcome
            .actions
            .first()
            .map(|action| action.id.clone())
            .ok_or_else(|| failed("the indicator names no action".into()))
    }

    /// Waits until `action` is in `state` at every gateway in `members`.
    pub(super) async fn until_action(
        &self,
        members: &[usize],
        action: &str,
        state: State,
    ) -> Result<(), DemoError> {
        for index in members {
            let threats =
                std::sync::Arc::clone(self.members[*index].node.gateway.publisher().threats());
            wait_until(
                "an action reaches its state",
                Duration::from_millis(10),
                || {
                    let now = threats
                        .actions(None)
                        .into_iter()
                        .find(|view| view.id == action)
                        .map(|view| view.state);
                    async move { now == Some(state) }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// `proposer` proposes a governance op of `kind` about `target` in `field` (the others'
    /// gateways endorse by their own rules).
    pub(super) async fn propose(
        &self,
        proposer: usize,
        field: &str,
        kind: OpKind,
        target: usize,
        reason: &str,
    ) -> Result<(), DemoError> {
        self.members[proposer]
            .node
            .gateway
            .publisher()
            .propose(
                field,
                OpDraft {
                    kind,
                    target: self.members[target].node.did.clone(),
                    reason: reason.into(),
                    types: vec![],
                    policy: None,
                },
            )
            .await
            .map_err(|error| DemoError::failed("a governance proposal", error.to_string()))?;
        Ok(())
    }

    /// Waits until every gateway in `at` holds `target` in `standing`.
    pub(super) async fn until_standing(
        &self,
        field: &str,
        target: usize,
        standing: StandingKind,
        at: &[usize],
    ) -> Result<(), DemoError> {
        let target = &self.members[target].node.did;
        wait_until(
            "every gateway holds a standing",
            Duration::from_millis(1),
            || {
                let all = at.iter().all(|index| {
                    self.members[*index]
                        .node
                        .gateway
                        .services()
                        .governance
                        .standing(field, target)
                        == Some(standing)
                });
                async move { all }
            },
        )
        .await?;
        Ok(())
    }

    /// How many gateways in `at` hold `target` in `standing`.
    pub(super) fn count_standing(
        &self,
        field: &str,
        target: usize,
        standing: StandingKind,
        at: &[usize],
    ) -> usize {
        let target = &self.members[target].node.did;
        at.iter()
            .filter(|index| {
                self.members[**index]
                    .node
                    .gateway
                    .services()
                    .governance
                    .standing(field, target)
                    == Some(standing)
            })
            .count()
    }

    /// How many gateways in `at` hold `action` in `state`.
    pub(super) fn count_state(&self, action: &str, state: State, at: &[usize]) -> usize {
        at.iter()
            .filter(|index| {
                self.members[**index]
                    .node
                    .gateway
                    .publisher()
                    .threats()
                    .actions(Some(state))
                    .iter()
                    .any(|view| view.id == action)
            })
            .count()
    }

    /// The standing `viewpoint` holds of `member`, for narration: `member`, `revoked`, ….
    pub(super) fn standing(&self, viewpoint: usize, field: &str, member: usize) -> String {
        let did = &self.members[member].node.did;
        match self.members[viewpoint]
            .node
            .gateway
            .services()
            .governance
            .standing(field, did)
        {
            Some(standing) => format!("{standing:?}").to_lowercase(),
            None => "not admitted".into(),
        }
    }

    /// Verifies every gateway's audit chain; returns (gateways verified, entries).
    pub(super) fn verify_audit(&self) -> Result<(usize, u64), DemoError> {
        let mut verified = 0;
        let mut entries = 0;
        for member in &self.members {
            let report = member
                .node
                .gateway
                .services()
                .audit
                .verify()
                .map_err(|error| {
                    DemoError::failed("verifying an audit chain", error.to_string())
                })?;
            entries += report.entries;
            if report.broken.is_none() {
                verified += 1;
            }
        }
        Ok((verified, entries))
    }

    /// Prints the environment to explore the field with `tfcctl` through `member`'s API
    /// (the README's tour uses exactly these variables), then every gateway's own.
    pub(super) fn print_tour(&self, member: usize, field: &str) {
        let node = &self.members[member].node;
        println!(
            "\nThe field stays up until Ctrl-C. In another terminal, explore it as the {}:\n",
            self.members[member].name
        );
        println!("  export TFC_DATA_DIR={}", node.dir.display());
        println!("  export G={}", api_url(node));
        println!("  export FIELD={}", &field[..FIELD_PREFIX.min(field.len())]);
        for other in &self.members {
            println!("  export {}={}", shell_name(other.name), other.node.did);
        }
        println!("\nthen, for example: tfcctl --gateway $G peers (the README's tour has more)");
        println!("\nEvery gateway's data directory and API:");
        for other in &self.members {
            println!(
                "  {:<12} TFC_DATA_DIR={}  G={}",
                other.name,
                other.node.dir.display(),
                api_url(&other.node)
            );
        }
    }

    /// Stops every gateway.
    pub(super) async fn shutdown(self) -> Result<(), DemoError> {
        for member in self.members {
            member.node.shutdown().await?;
        }
        Ok(())
    }
}

/// How a scenario opens: who takes part, what they hold, and the example charter they sign.
pub(super) struct Opening<'a> {
    /// `(name, role)` of every organisation; the first is the bootstrap peer.
    pub(super) roles: &'a [(&'static str, &'static str)],
    /// What the credentials chapter is about.
    pub(super) credentials: &'a str,
    /// Every member's credentials.
    pub(super) wallets: fn(&Cast) -> Result<Vec<Vec<String>>, DemoError>,
    /// The example charter's path, for narration, and its text.
    pub(super) example: (&'a str, &'a str),
    /// The field's Cedar policy.
    pub(super) policy: &'a str,
    /// Who founds, administers and issues.
    pub(super) charter: CharterRoles<'a>,
    /// Who joins the field in the opening chapters (the first is the bootstrap peer); the
    /// scenario has the others join when its story says.
    pub(super) joining_first: &'a [usize],
}

/// The chapters every scenario opens with: the gateways start, the issuers issue, the
/// founders sign the charter and the first gateways join. Returns the cast, the wallets, the
/// field id and the charter's path.
pub(super) async fn open(
    root: &Path,
    story: &mut Story,
    opening: &Opening<'_>,
) -> Result<(Cast, Vec<Vec<String>>, String, PathBuf), DemoError> {
    story.chapter(&format!(
        "Keys: {} organisations start their gateways on loopback",
        opening.roles.len()
    ));
    let cast = Cast::start(root, opening.roles, |text| text, story).await?;
    story.check(
        "gateways started",
        opening.roles.len(),
        cast.members.len(),
        "each has its own data directory, org key (0600), sled store, libp2p and HTTPS ports",
    );

    story.chapter(&format!("Credentials: {}", opening.credentials));
    let wallets = (opening.wallets)(&cast)?;
    let mut imported = 0;
    for (member, tokens) in wallets.iter().enumerate() {
        cast.members[member].node.import_wallet(tokens).await?;
        imported += tokens.len();
    }
    story.check(
        "credentials issued and imported",
        wallets.iter().map(Vec::len).sum::<usize>(),
        imported,
        "each wallet import verified the issuer's signature and that it names the holder",
    );

    let founders: Vec<&str> = opening
        .charter
        .founders
        .iter()
        .map(|index| cast.members[*index].name)
        .collect();
    story.chapter(&format!(
        "Charter: the founders ({}) sign the field's charter",
        founders.join(", ")
    ));
    let (example, template) = opening.example;
    let charter_path = cast.write_charter(root, template, &opening.charter, opening.policy)?;
    let charter = Charter::load(&charter_path)
        .map_err(|error| DemoError::failed("loading the charter", error.to_string()))?;
    story.check(
        "founders' signatures",
        format!("{0} of {0}", founders.len()),
        format!("{} of {}", charter.signed_by().len(), founders.len()),
        &format!(
            "{example} with this field's keys; field id {}",
            &charter.field_id()[..16]
        ),
    );

    let first: Vec<usize> = opening.joining_first.to_vec();
    let field = cast.join(&charter_path, &first).await?;
    Ok((cast, wallets, field, charter_path))
}

/// Who plays which part in a charter: indices into the cast.
pub(super) struct CharterRoles<'a> {
    /// The founders, who sign it.
    pub(super) founders: &'a [usize],
    /// The admins.
    pub(super) admins: &'a [usize],
    /// The template's issuer names (a prefix of each) and the member issuing as each.
    pub(super) issuers: &'a [(&'a str, usize)],
}

/// What a gateway concluded of a member.
pub(super) struct Verdict {
    /// The member.
    pub(super) member: usize,
    /// Its highest tier.
    pub(super) tier: u8,
    /// The refusal code, if refused.
    pub(super) refusal: Option<String>,
}

/// How much of the field id the tour prints (`--field` takes a prefix).
const FIELD_PREFIX: usize = 16;

fn api_url(node: &LocalGateway) -> String {
    format!("https://localhost:{}", node.gateway.api_address().port())
}

/// `contractor-c` → `CONTRACTOR_C`.
fn shell_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The most chunks [`Cast::fetch`] reads.
const MAX_CHUNKS: u32 = 64;

fn refusal(code: &str, reason: String) -> DataAnswer {
    DataAnswer {
        allowed: false,
        code: code.into(),
        reason,
        records: Vec::new(),
    }
}

/// A credential from `issuer` to `holder`, valid from a day ago for a year.
pub(super) fn issue(
    issuer: &KeyPair,
    holder: &str,
    type_name: &str,
    claims: Value,
) -> Result<String, DemoError> {
    let now = now_unix();
    let draft = CredentialDraft {
        type_name: type_name.into(),
        subject: holder.into(),
        claims: claims.as_object().cloned().unwrap_or_default(),
        valid_from: now - DAY,
        valid_until: Some(now + 365 * DAY),
        status: vec![],
    };
    issue_credential(issuer, &draft, now)
        .map_err(|error| DemoError::failed(&format!("issuing a {type_name}"), error.to_string()))
}

/// A valid 法人番号 (check digit and twelve digits) for `index`.
fn corporate_number(index: u64) -> Result<String, DemoError> {
    let base = format!("{:012}", 700_000_000_000 + index);
    let check = tfc_schemas::corporate_number_check_digit(&base)
        .ok_or_else(|| DemoError::failed("numbering", "no check digit".into()))?;
    Ok(format!("{check}{base}"))
}

/// `did:key:z6Mk…` shortened for a table.
pub(super) fn abbreviate(did: &str) -> String {
    if did.len() > 24 {
        format!("{}…{}", &did[..16], &did[did.len() - 6..])
    } else {
        did.to_owned()
    }
}

/// One line on a tier report: what the first tier not reached still needs, in the
/// evaluator's words, or that every tier is met.
pub(super) fn explain(report: &TierReport) -> String {
    let Some(short) = report.tiers.iter().find(|tier| !tier.satisfied) else {
        return "meets every requirement of the three tiers".into();
    };
    let unmet: Vec<String> = short
        .requirements
        .iter()
        .filter(|requirement| requirement.status != RequirementStatus::Satisfied)
        .map(|requirement| match requirement.kind {
            "constraint" => format!("{} ({})", requirement.requirement, requirement.explanation),
            _ => requirement.explanation.clone(),
        })
        .collect();
    format!("{} not reached: {}", short.name, unmet.join("; "))
}

/// `allowed` or `refused`.
pub(super) fn allowed(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "refused" }
}

/// `allowed`, or `refused: <code>`.
pub(super) fn outcome(answer: &DataAnswer) -> String {
    if answer.allowed {
        "allowed".into()
    } else {
        format!("refused: {}", answer.code)
    }
}

/// `CreditRatingCredential` → `credit rating`.
pub(super) fn short_type(type_name: &str) -> String {
    let stem = type_name.trim_end_matches("Credential");
    let mut words = String::new();
    for (index, letter) in stem.char_indices() {
        if letter.is_uppercase() && index > 0 {
            words.push(' ');
        }
        words.push(letter.to_ascii_lowercase());
    }
    words
}
