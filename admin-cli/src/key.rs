//! `tfcctl key generate|did`.

use tfc_gateway::identity::{KeyAlgorithm, KeyPair};

use crate::{KeyAlg, KeyCommand, Outcome};

pub(crate) fn run(command: KeyCommand) -> anyhow::Result<Outcome> {
    let did = match command {
        KeyCommand::Generate { out, alg } => {
            let algorithm = match alg {
                KeyAlg::Ed25519 => KeyAlgorithm::Ed25519,
                KeyAlg::P256 => KeyAlgorithm::P256,
            };
            let key = KeyPair::generate(algorithm);
            key.save(&out)?;
            key.did()
        }
        KeyCommand::Did { key } => KeyPair::load(&key)?.did(),
    };
    println!("{did}");
    Ok(Outcome::Success)
}
