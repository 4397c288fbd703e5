//! The addresses threat countermeasures block: what the network's gate refuses.

use std::net::IpAddr;

use ipnet::IpNet;

/// One change to what the gate refuses. Blocks count: a network blocked twice stays blocked
/// until it is unblocked twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressChange {
    /// Refuse this network from now on.
    BlockNetwork(IpNet),
    /// Lift one block of this network.
    UnblockNetwork(IpNet),
    /// Refuse this domain and its subdomains from now on.
    BlockDomain(String),
    /// Lift one block of this domain.
    UnblockDomain(String),
}

/// What the gate refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressBlocks {
    /// Networks (a single address is a /32 or /128).
    pub networks: Vec<IpNet>,
    /// Domains, with their subdomains (matched on `/dns*/` addresses).
    pub domains: Vec<String>,
}

impl AddressBlocks {
    /// The blocked network that covers `ip`, if any, for the log.
    pub fn network_covering(&self, ip: IpAddr) -> Option<String> {
        self.networks
            .iter()
            .find(|net| net.contains(&ip))
            .map(ToString::to_string)
    }

    /// The blocked domain that covers `host` (itself or a parent), if any.
    pub fn domain_covering(&self, host: &str) -> Option<String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .find(|domain| {
                host == **domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.'))
            })
            .cloned()
    }
}
