//! `tfcctl`: offline credential tools and the admin client of a TFC gateway.
//!
//! Exit status: 0 for success or valid, 1 for invalid or denied, 2 for usage or I/O errors,
//! 3 when nothing was done yet (held for a second operator, or not confirmed).

mod audit;
mod client;
mod credential;
mod data;
mod disclosures;
mod field;
mod governance;
mod input;
mod key;
mod operators;
mod output;
mod status_list;
mod threat;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Offline credential tools and the admin client of a TFC gateway.
#[derive(Parser)]
#[command(name = "tfcctl", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    gateway: client::GatewayArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Organisation and issuer keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Issue and verify credentials (vc+jwt).
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Create and verify presentations (vp+jwt).
    #[command(subcommand)]
    Presentation(PresentationCommand),
    /// Bitstring status lists: revoke and suspend credentials.
    #[command(subcommand, name = "status-list")]
    StatusList(StatusListCommand),
    /// Field charters.
    #[command(subcommand)]
    Field(FieldCommand),
    /// Trust tiers.
    #[command(subcommand)]
    Tier(TierCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Access policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The gateway's identity, addresses and counts (needs --gateway).
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// What needs this operator's action, oldest first: ops to sign, countermeasures,
    /// applicants, expiring credentials, stale status lists, approvals (needs --gateway).
    Inbox {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The peers the gateway has verified, with their tiers (needs --gateway).
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a peer; the handshake follows (needs --gateway).
    Dial {
        /// The peer's multiaddr, e.g. /ip4/192.0.2.10/tcp/7400/p2p/12D3KooW….
        address: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The gateway's own credentials (needs --gateway).
    #[command(subcommand)]
    Wallet(client::WalletCommand),
    /// Field membership: propose, endorse, revoke, suspend, reinstate, list (needs --gateway).
    #[command(subcommand)]
    Member(governance::MemberCommand),
    /// The tamper-evident audit log: verify, export.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Records in data spaces: ours, and requests to other organisations' (needs --gateway).
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Threat indicators and countermeasures: compose, publish, import, list, apply, reject.
    #[command(subcommand)]
    Threat(threat::ThreatCommand),
    /// Presentations of credentials sent and received: who has seen what, when, and why
    /// (needs --gateway).
    Disclosures(disclosures::DisclosuresArgs),
    /// Operators' client certificates, each with a name and a role (needs --data-dir).
    #[command(subcommand, name = "admin-cert")]
    AdminCert(operators::AdminCertCommand),
    /// Actions waiting for a second operator's approval (four eyes; needs --gateway).
    #[command(subcommand)]
    Approvals(operators::ApprovalsCommand),
}

#[derive(Subcommand)]
enum FieldCommand {
    /// Hash, sign and verify a charter offline.
    #[command(subcommand)]
    Charter(field::CharterCommand),
    /// Join a field: the gateway loads the signed charter at this path (needs --gateway).
    Join {
        /// The charter file.
        charter: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The fields the gateway has joined (needs --gateway).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Leave a joined field (active or disabled): no more gossip, answers or judgements
    /// there; its governance ops and records stay in the store (needs --gateway).
    Leave {
        /// The field id (a prefix is enough).
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One joined field, by id or id prefix (needs --gateway).
    Show {
        /// The field id (a prefix is enough).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Governance(governance::IssuerCommand),
}

#[derive(Subcommand)]
enum TierCommand {
    /// Compute the tier a holder reaches in a field, and explain it (exit 1 at tier 0).
    Evaluate(field::TierArgs),
    /// Explain a peer's tier in a joined field as of now, from the credentials it presented
    /// there: what counts, what is missing or failed, bars, countermeasures, and when it next
    /// changes (needs --gateway; exit 1 at tier 0).
    Explain {
        /// The peer's DID.
        did: String,
        /// The field id (a prefix is enough).
        #[arg(long)]
        field: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Decide one access request offline (exit 1 when denied).
    Check(field::PolicyCheckArgs),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate a key into a new 0600 PKCS#8 PEM file and print its DID.
    Generate {
        /// The file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Key type: organisations use ed25519; issuers may use p256.
        #[arg(long, value_enum, default_value_t = KeyAlg::Ed25519)]
        alg: KeyAlg,
    },
    /// Print the DID of a key file.
    Did {
        /// The PKCS#8 PEM key file.
        #[arg(long)]
        key: PathBuf,
    },
}

/// Key types offered on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum KeyAlg {
    /// Ed25519 (EdDSA): organisation keys.
    Ed25519,
    /// P-256 (ES256): accepted for issuers.
    P256,
}

/// Status purposes offered on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum Purpose {
    /// A set bit revokes, for good.
    Revocation,
    /// A set bit suspends, until cleared.
    Suspension,
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Issue a credential and print it (or write it with --out).
    Issue(credential::IssueArgs),
    /// Verify a credential.
    Verify(credential::VerifyArgs),
}

#[derive(Subcommand)]
enum PresentationCommand {
    /// Create a presentation of credentials for one verifier and challenge.
    Create(credential::PresentArgs),
    /// Verify a presentation and every credential in it.
    Verify(credential::VerifyPresentationArgs),
}

#[derive(Subcommand)]
enum StatusListCommand {
    /// Create a signed status list with every bit clear.
    Create(status_list::CreateArgs),
    /// Set or clear one entry and re-sign the list.
    Set(status_list::SetArgs),
    /// Show a status list (verifying its signature).
    Show(status_list::ShowArgs),
    /// Give a status list to the gateway, which checks it and gossips it to the field
    /// (needs --gateway).
    Import {
        /// The status list credential file.
        file: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The status lists the gateway holds (needs --gateway).
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// What the verification options of `verify` commands share.
#[derive(Args)]
struct TrustArgs {
    /// The field charter whose trusted issuers to check against. Without it, issuer trust
    /// is not checked (and the output says so).
    #[arg(long)]
    charter: Option<PathBuf>,
    /// A status list credential file (repeatable).
    #[arg(long = "status-list")]
    status_lists: Vec<PathBuf>,
    /// Status lists older than this do not count (e.g. 24h). Default: the charter's
    /// status_max_age, else 24h.
    #[arg(long)]
    status_max_age: Option<String>,
    /// Judge as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// The result of a command that ran to completion.
enum Outcome {
    /// Success, or the input is valid.
    Success,
    /// The input is invalid or the request is denied.
    Invalid,
    /// Nothing was done yet: the action waits for a second operator, or was not confirmed.
    Held,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let gateway = cli.gateway;
    let result = match cli.command {
        Command::Key(command) => key::run(command),
        Command::Credential(CredentialCommand::Issue(args)) => credential::issue(args),
        Command::Credential(CredentialCommand::Verify(args)) => credential::verify(args),
        Command::Presentation(PresentationCommand::Create(args)) => credential::present(args),
        Command::Presentation(PresentationCommand::Verify(args)) => {
            credential::verify_presentation(args)
        }
        Command::StatusList(StatusListCommand::Create(args)) => status_list::create(args),
        Command::StatusList(StatusListCommand::Set(args)) => status_list::set(args),
        Command::StatusList(StatusListCommand::Show(args)) => status_list::show(args),
        Command::StatusList(StatusListCommand::Import { file, json }) => {
            client::import_status_list(&gateway, &file, json)
        }
        Command::StatusList(StatusListCommand::List { json }) => {
            client::status_lists(&gateway, json)
        }
        Command::Field(FieldCommand::Charter(command)) => field::charter(command),
        Command::Field(FieldCommand::Join { charter, json }) => {
            client::join_field(&gateway, &charter, json)
        }
        Command::Field(FieldCommand::List { json }) => client::list_fields(&gateway, None, json),
        Command::Field(FieldCommand::Show { id, json }) => {
            client::list_fields(&gateway, Some(&id), json)
        }
        Command::Field(FieldCommand::Leave { id, json }) => {
            client::leave_field(&gateway, &id, json)
        }
        Command::Status { json } => client::status(&gateway, json),
        Command::Peers { json } => client::peers(&gateway, json),
        Command::Inbox { json } => client::inbox(&gateway, json),
        Command::Dial { address, json } => client::dial(&gateway, &address, json),
        Command::Wallet(command) => client::wallet(&gateway, command),
        Command::Member(command) => governance::member(&gateway, command),
        Command::Audit(command) => audit::run(&gateway, command),
        Command::Data(command) => data::run(&gateway, command),
        Command::Threat(command) => threat::run(&gateway, command),
        Command::Disclosures(args) => disclosures::run(&gateway, args),
        Command::AdminCert(command) => operators::admin_cert(&gateway, command),
        Command::Approvals(command) => operators::approvals(&gateway, command),
        Command::Field(FieldCommand::Governance(command)) => governance::issuers(&gateway, command),
        Command::Tier(TierCommand::Evaluate(args)) => field::tier(args),
        Command::Tier(TierCommand::Explain { did, field, json }) => {
            client::explain_tier(&gateway, &did, &field, json)
        }
        Command::Policy(PolicyCommand::Check(args)) => field::policy_check(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "tfcctl", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Ok(Outcome::Held) => ExitCode::from(3),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
