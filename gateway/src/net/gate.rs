//! The address gate: refuses connections to and from blocked addresses, networks and
//! domains, and closes the open ones when a block arrives.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;

use std::task::{Context, Poll, Waker};

use super::{AddressBlocks, AddressChange};
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr, multiaddr::Protocol};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

/// The block that covers `address`, if any, for the log.
fn covering(blocks: &AddressBlocks, address: &Multiaddr) -> Option<String> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => blocks.network_covering(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => blocks.network_covering(IpAddr::V6(ip)),
        Protocol::Dns(host) | Protocol::Dns4(host) | Protocol::Dns6(host) => {
            blocks.domain_covering(&host)
        }
        _ => None,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("address blocked by a threat countermeasure ({0})")]
struct Blocked(String);

/// The behaviour: first in the swarm, so a blocked address reaches nothing else.
#[derive(Default)]
pub(super) struct AddressGate {
    blocks: AddressBlocks,
    open: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    to_close: VecDeque<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
}

impl AddressGate {
    /// Applies a change; a new block schedules the open connections it covers for closing.
    pub(super) fn apply(&mut self, change: AddressChange) {
        // Only the new block is checked against the open connections: the others were.
        let new = match change {
            AddressChange::BlockNetwork(net) => {
                self.blocks.networks.push(net);
                AddressBlocks {
                    networks: vec![net],
                    domains: vec![],
                }
            }
            AddressChange::BlockDomain(domain) => {
                self.blocks.domains.push(domain.clone());
                AddressBlocks {
                    networks: vec![],
                    domains: vec![domain],
                }
            }
            AddressChange::UnblockNetwork(net) => return lift(&mut self.blocks.networks, &net),
            AddressChange::UnblockDomain(domain) => {
                return lift(&mut self.blocks.domains, &domain);
            }
        };
        for (connection, (peer, address)) in &self.open {
            if let Some(block) = covering(&new, address) {
                tracing::info!(%peer, %address, %block, "closing a connection from a blocked address");
                self.to_close.push_back((*peer, *connection));
            }
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn check(&self, address: &Multiaddr) -> Result<(), ConnectionDenied> {
        match covering(&self.blocks, address) {
            Some(block) => Err(ConnectionDenied::new(Blocked(block))),
            None => Ok(()),
        }
    }
}

/// Removes one occurrence of `item`.
fn lift<T: PartialEq>(list: &mut Vec<T>, item: &T) {
    if let Some(at) = list.iter().position(|held| held == item) {
        list.swap_remove(at);
    }
}

impl NetworkBehaviour for AddressGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check(remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        address: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(address)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                self.open.insert(
                    established.connection_id,
                    (
                        established.peer_id,
                        established.endpoint.get_remote_address().clone(),
                    ),
                );
            }
            FromSwarm::ConnectionClosed(closed) => {
                self.open.remove(&closed.connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.to_close.pop_front() {
            Some((peer_id, connection)) => Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            }),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_count_and_lift_one_at_a_time() {
        let mut gate = AddressGate::default();
        let net: ipnet::IpNet = "192.0.2.0/24".parse().unwrap();
        let address: Multiaddr = "/ip4/192.0.2.1/tcp/1".parse().unwrap();
        gate.apply(AddressChange::BlockNetwork(net));
        gate.apply(AddressChange::BlockNetwork(net));
        gate.apply(AddressChange::UnblockNetwork(net));
        assert!(gate.check(&address).is_err(), "one block is left");
        gate.apply(AddressChange::UnblockNetwork(net));
        assert!(gate.check(&address).is_ok());
    }

    #[test]
    fn blocks_cover_addresses_networks_and_domains() {
        let blocks = AddressBlocks {
            networks: vec![
                "198.51.100.0/24".parse().unwrap(),
                "2001:db8::1/128".parse().unwrap(),
            ],
            domains: vec!["evil.example".into()],
        };
        let covered = |text: &str| covering(&blocks, &text.parse().unwrap());
        assert_eq!(
            covered("/ip4/198.51.100.9/tcp/1").as_deref(),
            Some("198.51.100.0/24")
        );
        assert!(covered("/ip4/198.51.101.9/tcp/1").is_none());
        assert!(covered("/ip6/2001:db8::1/tcp/1").is_some());
        assert!(covered("/dns4/a.evil.example/tcp/1").is_some());
        assert!(covered("/dns4/notevil.example/tcp/1").is_none());
    }
}
