//! The admin API client: `tfcctl --gateway URL status|peers|wallet …|field join|list|show`.
//! It speaks HTTPS with the admin client certificate; the request and response bodies are the
//! gateway's own types.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tfc_gateway::api::approvals::PendingApproval;
use tfc_gateway::api::types::{
    ApiError, Dial, FieldView, JoinField, PeerView, StatusListImport, StatusListImported,
    StatusResponse, WalletEntryView, WalletImport,
};
use tfc_gateway::services::inbox::InboxItem;

use crate::Outcome;
use crate::input::read_token;
use crate::output::print_json;
use tfc_gateway::text::fit;

/// How to reach a gateway's admin API.
#[derive(Args, Clone)]
pub(crate) struct GatewayArgs {
    /// The gateway's API, e.g. https://localhost:7443 (anywhere on the line).
    #[arg(long, global = true, env = "TFC_GATEWAY")]
    gateway: Option<String>,
    /// The gateway's data directory, whose tls/ holds the admin certificate, key and CA.
    #[arg(long, global = true, env = "TFC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The admin client certificate (default: <data-dir>/tls/admin-client.pem).
    #[arg(long, global = true, env = "TFC_ADMIN_CERT")]
    cert: Option<PathBuf>,
    /// The admin client key (default: <data-dir>/tls/admin-client-key.pem). Before the
    /// subcommand: some subcommands have a --key of their own.
    #[arg(long, env = "TFC_ADMIN_KEY")]
    key: Option<PathBuf>,
    /// The admin CA certificate (default: <data-dir>/tls/admin-ca.pem).
    #[arg(long, global = true, env = "TFC_ADMIN_CA")]
    ca: Option<PathBuf>,
}

impl GatewayArgs {
    /// The gateway URL, if given.
    pub(crate) fn url(&self) -> Option<&str> {
        self.gateway.as_deref()
    }

    /// The data directory, if given.
    pub(crate) fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }
}

/// `tfcctl --gateway URL wallet …`.
#[derive(Subcommand)]
pub(crate) enum WalletCommand {
    /// Add one of the organisation's credentials to the gateway's wallet.
    Import {
        /// The credential file (compact vc+jwt).
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the wallet.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// An authenticated API client.
pub(crate) struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

/// A gateway URL the client can use: https, a host, nothing after the port.
fn check_gateway_url(base: &str) -> anyhow::Result<()> {
    let hint = "give the gateway's admin API as https://HOST:PORT (its [api] listen address, \
                e.g. https://localhost:7443)";
    let url = reqwest::Url::parse(base)
        .map_err(|error| anyhow::anyhow!("--gateway {base:?} is not a URL ({error}): {hint}"))?;
    if url.scheme() != "https" {
        bail!(
            "--gateway {base:?} uses {}: the admin API speaks only HTTPS with mutual TLS; {hint}",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) || !url.path().trim_matches('/').is_empty() {
        bail!("--gateway {base:?} needs a host and nothing after the port: {hint}");
    }
    Ok(())
}

impl Client {
    pub(crate) fn connect(args: &GatewayArgs) -> anyhow::Result<Self> {
        let base = args.gateway.clone().context(
            "this command talks to a gateway: pass --gateway https://HOST:PORT or set TFC_GATEWAY",
        )?;
        check_gateway_url(&base)?;
        let file = |given: &Option<PathBuf>, name: &str| -> anyhow::Result<PathBuf> {
            match (given, &args.data_dir) {
                (Some(path), _) => Ok(path.clone()),
                (None, Some(dir)) => Ok(dir.join("tls").join(name)),
                (None, None) => bail!(
                    "pass --data-dir DIR (the gateway's data directory) or --cert, --key and --ca"
                ),
            }
        };
        let ca = file(&args.ca, "admin-ca.pem")?;
        let cert = file(&args.cert, "admin-client.pem")?;
        let key = file(&args.key, "admin-client-key.pem")?;
        let config = tls_config(&ca, &cert, &key)?;
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .context("cannot build the HTTPS client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<Result<T, ApiError>> {
        let response = self.http.get(format!("{}{path}", self.base)).send();
        answer(response, &self.base)
    }

    /// A POST of raw bytes (uploads) answered with JSON.
    pub(crate) fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Result<T, ApiError>> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send();
        answer(response, &self.base)
    }

    /// A request answered with raw bytes (downloads): a JSON body is sent when given.
    pub(crate) fn fetch_bytes<B: Serialize>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Result<Vec<u8>, ApiError>> {
        let url = format!("{}{path}", self.base);
        let request = match body {
            Some(body) => self.http.post(url).json(body),
            None => self.http.get(url),
        };
        let response = request
            .send()
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        if response.status().is_success() {
            return Ok(Ok(response
                .bytes()
                .context("the download broke off")?
                .to_vec()));
        }
        let status = response.status();
        Ok(Err(response.json::<ApiError>().unwrap_or(ApiError {
            code: "http".into(),
            message: format!("HTTP {status}"),
        })))
    }

    /// A DELETE.
    pub(crate) fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<Result<T, ApiError>> {
        let response = self.http.delete(format!("{}{path}", self.base)).send();
        answer(response, &self.base)
    }

    /// A GET whose answer is text (exports).
    pub(crate) fn get_text(&self, path: &str) -> anyhow::Result<Result<String, ApiError>> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        if response.status().is_success() {
            return Ok(Ok(response
                .text()
                .context("the gateway's answer is not text")?));
        }
        let status = response.status();
        Ok(Err(response.json::<ApiError>().unwrap_or(ApiError {
            code: "http".into(),
            message: format!("HTTP {status}"),
        })))
    }

    pub(crate) fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<Result<T, ApiError>> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send();
        answer(response, &self.base)
    }
}

fn tls_config(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read the admin CA {}", ca.display()))?
    {
        roots.add(
            certificate.with_context(|| format!("{} is not a PEM certificate", ca.display()))?,
        )?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the admin certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate", cert.display()))?;
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the admin key {}", key.display()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, private)
    .context("the admin certificate and key do not match")?;
    Ok(config)
}

/// A success body, an API error (exit 1), or a transport failure (exit 2).
fn answer<T: DeserializeOwned>(
    response: reqwest::Result<reqwest::blocking::Response>,
    base: &str,
) -> anyhow::Result<Result<T, ApiError>> {
    let response = response.with_context(|| {
        format!(
            "cannot reach the gateway at {base} (is it running, and is this its admin certificate?)"
        )
    })?;
    if response.status() == reqwest::StatusCode::ACCEPTED {
        let held: PendingApproval = response
            .json()
            .context("the gateway's answer is not the expected JSON")?;
        return Ok(Err(ApiError {
            code: HELD.into(),
            message: format!(
                "{} waits for a second operator's approval; another operator runs \
                 `tfcctl approvals approve {}`",
                held.kind, held.id
            ),
        }));
    }
    if response.status().is_success() {
        return Ok(Ok(response
            .json()
            .context("the gateway's answer is not the expected JSON")?));
    }
    let status = response.status();
    Ok(Err(response.json::<ApiError>().unwrap_or(ApiError {
        code: "http".into(),
        message: format!("HTTP {status}"),
    })))
}

/// The code `tfcctl` reports for an action the gateway held for a second operator.
pub(crate) const HELD: &str = "held_for_approval";

/// Reports an answer that is not a success: refused (exit 1), or held for a second
/// operator (exit 3).
/// What the tables show for an organisation whose identity this gateway has not verified.
pub(crate) const UNVERIFIED_NAME: &str = "(name not verified)";

pub(crate) fn refused(error: &ApiError, json: bool) -> Outcome {
    if error.code == HELD {
        if json {
            print_json(
                &serde_json::json!({"ok": false, "held": true, "code": error.code, "message": error.message}),
            );
        } else {
            eprintln!("HELD     {}", error.message);
        }
        return Outcome::Held;
    }
    if json {
        print_json(&serde_json::json!({"ok": false, "code": error.code, "message": error.message}));
    } else {
        eprintln!("REFUSED  {}: {}", error.code, error.message);
    }
    Outcome::Invalid
}

pub(crate) fn status(args: &GatewayArgs, json: bool) -> anyhow::Result<Outcome> {
    let client = Client::connect(args)?;
    let status: StatusResponse = match client.get("/v1/status")? {
        Ok(status) => status,
        Err(error) => return Ok(refused(&error, json)),
    };
    if json {
        print_json(&serde_json::to_value(&status)?);
    } else {
        match &status.name {
            Some(name) => println!("organisation  {name} ({})", status.did),
            None => println!("organisation  {}", status.did),
        }
        println!("peer id       {}", status.peer_id);
        for address in &status.listen {
            println!("listening     {address}/p2p/{}", status.peer_id);
        }
        println!("fields        {}", status.fields.len());
        println!("wallet        {} credentials", status.wallet);
        println!("peers         {}", status.peers);
    }
    Ok(Outcome::Success)
}

pub(crate) fn peers(args: &GatewayArgs, json: bool) -> anyhow::Result<Outcome> {
    let peers: Vec<PeerView> = match Client::connect(args)?.get("/v1/peers")? {
        Ok(peers) => peers,
        Err(error) => return Ok(refused(&error, json)),
    };
    if json {
        print_json(&serde_json::to_value(&peers)?);
        return Ok(Outcome::Success);
    }
    println!(
        "{} {:<58} {:<6} next change",
        fit("organisation", 28),
        "did",
        "tier"
    );
    for peer in &peers {
        let tier = peer.tiers.values().copied().max().unwrap_or(0);
        println!(
            "{} {:<58} {:<6} {}",
            fit(peer.name.as_deref().unwrap_or(UNVERIFIED_NAME), 28),
            peer.did,
            tier,
            peer.next_change.as_deref().unwrap_or("-")
        );
    }
    Ok(Outcome::Success)
}

pub(crate) fn wallet(args: &GatewayArgs, command: WalletCommand) -> anyhow::Result<Outcome> {
    let client = Client::connect(args)?;
    match command {
        WalletCommand::Import { file, json } => {
            let credential = read_token(&file)?.trim().to_owned();
            match client.post::<_, WalletEntryView>("/v1/wallet", &WalletImport { credential })? {
                Ok(entry) if json => print_json(&serde_json::to_value(&entry)?),
                Ok(entry) => {
                    println!(
                        "imported {} {} from {}",
                        entry.type_name,
                        entry.id,
                        issuer_named(&entry)
                    );
                    if entry.trusted_in.is_empty() {
                        eprintln!(
                            "warning: no joined field trusts {} for {}: the credential counts in no field yet",
                            entry.issuer, entry.type_name
                        );
                    }
                }
                Err(error) => return Ok(refused(&error, json)),
            }
        }
        WalletCommand::List { json } => {
            let entries: Vec<WalletEntryView> = match client.get("/v1/wallet")? {
                Ok(entries) => entries,
                Err(error) => return Ok(refused(&error, json)),
            };
            if json {
                print_json(&serde_json::to_value(&entries)?);
            } else {
                for entry in &entries {
                    println!(
                        "{:<38} {:<48} {:<22} {}",
                        entry.type_name,
                        entry.id,
                        entry.valid_until.as_deref().unwrap_or("no expiry"),
                        issuer_named(entry)
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// A credential's issuer with the name a joined field's charter gives it.
fn issuer_named(entry: &WalletEntryView) -> String {
    match &entry.issuer_name {
        Some(name) => format!("{name} ({})", entry.issuer),
        None => entry.issuer.clone(),
    }
}

pub(crate) fn join_field(
    args: &GatewayArgs,
    charter: &Path,
    json: bool,
) -> anyhow::Result<Outcome> {
    let charter = std::fs::canonicalize(charter)
        .with_context(|| format!("cannot find {}", charter.display()))?;
    let request = JoinField {
        charter: charter.display().to_string(),
    };
    match Client::connect(args)?.post::<_, FieldView>("/v1/fields", &request)? {
        Ok(field) if json => print_json(&serde_json::to_value(&field)?),
        Ok(field) => println!("joined {} ({})", field.name, field.id),
        Err(error) => return Ok(refused(&error, json)),
    }
    Ok(Outcome::Success)
}

pub(crate) fn list_fields(
    args: &GatewayArgs,
    show: Option<&str>,
    json: bool,
) -> anyhow::Result<Outcome> {
    let fields: Vec<FieldView> = match Client::connect(args)?.get("/v1/fields")? {
        Ok(fields) => fields,
        Err(error) => return Ok(refused(&error, json)),
    };
    let selected: Vec<&FieldView> = fields
        .iter()
        .filter(|field| show.is_none_or(|id| field.id.starts_with(id)))
        .collect();
    if show.is_some() && selected.is_empty() {
        return Ok(refused(
            &ApiError {
                code: "not_found".into(),
                message: "this gateway has not joined that field".into(),
            },
            json,
        ));
    }
    if json {
        print_json(&serde_json::to_value(&selected)?);
        return Ok(Outcome::Success);
    }
    for field in selected {
        if let Some(problem) = &field.problem {
            println!("{}  DISABLED  {problem}", field.id);
            continue;
        }
        println!("{}  {}", field.id, field.name);
        if show.is_some() {
            print_field(field);
        }
    }
    Ok(Outcome::Success)
}

fn print_field(field: &FieldView) {
    let named = |did: &String| match field.names.get(did) {
        Some(name) => format!("{name} ({did})"),
        None => did.clone(),
    };
    for founder in &field.founders {
        println!("  founder   {}", named(founder));
    }
    for admin in &field.admins {
        println!("  admin     {}", named(admin));
    }
    println!(
        "  quorum    {} signatures from members in good standing",
        field.quorum
    );
    for issuer in &field.issuers {
        println!(
            "  issuer    {} ({}) for {}",
            issuer.name,
            issuer.did,
            issuer.types.join(", ")
        );
    }
    for (tier, require) in field.tiers.iter().enumerate() {
        println!("  tier {}    needs {}", tier + 1, require.join(", "));
    }
}

pub(crate) fn leave_field(args: &GatewayArgs, id: &str, json: bool) -> anyhow::Result<Outcome> {
    let answer: serde_json::Value =
        match Client::connect(args)?.delete(&format!("/v1/fields/{id}"))? {
            Ok(answer) => answer,
            Err(error) => return Ok(refused(&error, json)),
        };
    if json {
        print_json(&answer);
    } else {
        println!(
            "left     field {}: no more gossip, answers or judgements there",
            answer["left"].as_str().unwrap_or(id)
        );
    }
    Ok(Outcome::Success)
}

pub(crate) fn dial(args: &GatewayArgs, address: &str, json: bool) -> anyhow::Result<Outcome> {
    let request = Dial {
        address: address.to_owned(),
    };
    match Client::connect(args)?.post::<_, serde_json::Value>("/v1/dial", &request)? {
        Ok(_) if json => print_json(&serde_json::json!({"ok": true, "dialing": address})),
        Ok(_) => println!("dialing {address}; `tfcctl peers` shows the outcome"),
        Err(error) => return Ok(refused(&error, json)),
    }
    Ok(Outcome::Success)
}

pub(crate) fn import_status_list(
    args: &GatewayArgs,
    file: &Path,
    json: bool,
) -> anyhow::Result<Outcome> {
    let credential = read_token(file)?.trim().to_owned();
    let request = StatusListImport { credential };
    match Client::connect(args)?.post::<_, StatusListImported>("/v1/status-lists", &request)? {
        Ok(imported) if json => print_json(&serde_json::to_value(&imported)?),
        Ok(imported) => println!(
            "{} {} ({}, {} entries set) from {}",
            if imported.taken {
                "taken and gossiped:"
            } else {
                "already held:"
            },
            imported.list.id,
            imported.list.purpose,
            imported.list.set_entries,
            imported.list.issuer
        ),
        Err(error) => return Ok(refused(&error, json)),
    }
    Ok(Outcome::Success)
}

pub(crate) fn status_lists(args: &GatewayArgs, json: bool) -> anyhow::Result<Outcome> {
    let lists: Vec<tfc_gateway::services::status::StatusListSummary> =
        match Client::connect(args)?.get("/v1/status-lists")? {
            Ok(lists) => lists,
            Err(error) => return Ok(refused(&error, json)),
        };
    if json {
        print_json(&serde_json::to_value(&lists)?);
        return Ok(Outcome::Success);
    }
    println!(
        "{:<48} {:<11} {:>5} {:<21} issuer",
        "list", "purpose", "set", "valid from"
    );
    for list in &lists {
        println!(
            "{:<48} {:<11} {:>5} {:<21} {}",
            list.id,
            list.purpose,
            list.set_entries,
            tfc_gateway::credential::format_rfc3339(list.issued_at),
            list.issuer
        );
    }
    Ok(Outcome::Success)
}

pub(crate) fn explain_tier(
    args: &GatewayArgs,
    did: &str,
    field: &str,
    json: bool,
) -> anyhow::Result<Outcome> {
    let client = Client::connect(args)?;
    let path = format!("/v1/fields/{field}/tier/{}", crate::data::encode(did));
    let explanation: serde_json::Value = match client.get(&path)? {
        Ok(explanation) => explanation,
        Err(error) => return Ok(refused(&error, json)),
    };
    let tier = explanation["tier"].as_u64().unwrap_or_default();
    if json {
        print_json(&explanation);
    } else {
        let name = explanation["name"].as_str().unwrap_or(UNVERIFIED_NAME);
        println!("{name}  {did}");
        if let Some(barred) = explanation["barred"].as_str() {
            println!("  BARRED   {barred}: tier 0 whatever it presents");
        }
        if let Some(cap) = explanation["cap"].as_u64() {
            println!("  CAPPED   at tier {cap} by a threat countermeasure");
        }
        if explanation["withheld"].as_u64().unwrap_or_default() > 0 {
            println!(
                "  WITHHELD {} credential(s) suspended by a countermeasure",
                explanation["withheld"]
            );
        }
        println!("  tier now {tier}");
        let field_name = explanation["field"].as_str().unwrap_or(field).to_owned();
        crate::field::print_tier_report(&format!("field {field_name}"), &explanation["report"]);
        let unmet = explanation["unmet"].as_array().cloned().unwrap_or_default();
        if !unmet.is_empty() {
            println!("\nFor the next tier:");
            for line in &unmet {
                println!("  - {}", line.as_str().unwrap_or_default());
            }
        }
    }
    Ok(if tier >= 1 {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

pub(crate) fn inbox(args: &GatewayArgs, json: bool) -> anyhow::Result<Outcome> {
    let items: Vec<InboxItem> = match Client::connect(args)?.get("/v1/inbox")? {
        Ok(items) => items,
        Err(error) => return Ok(refused(&error, json)),
    };
    if json {
        print_json(&serde_json::to_value(&items)?);
        return Ok(Outcome::Success);
    }
    if items.is_empty() {
        println!("nothing waits for you");
    }
    for item in &items {
        let about = match (&item.subject_name, &item.subject) {
            (Some(name), Some(did)) => format!("{name} ({did})"),
            (None, Some(did)) => did.clone(),
            _ => String::new(),
        };
        println!("{}  {:<20} {about}", item.since, item.kind);
        println!("    {}", item.summary);
        println!("    → {}", item.act);
    }
    Ok(Outcome::Success)
}
