//! The stranger gate: an address that keeps sending fresh identities the handshake refuses
//! (keys with no standing, or that never finish) is throttled, so that a stranger cannot
//! cycle keys to hold grace windows open. Lighthouse's peer manager bans an address once too
//! many of its peers were banned; this gate does the same with a token bucket per IP:
//! [`STRANGER_BURST`] refused identities, then one per [`STRANGER_REFILL`]. A throttled
//! address is refused right after the transport handshake, before any protocol runs, unless
//! the peer is a member of one of our fields or a peer we verified: members behind one
//! address (NAT, loopback) are never throttled for a stranger's sake.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr, multiaddr::Protocol};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// Refused fresh identities an address may send before it is throttled.
pub const STRANGER_BURST: f64 = 16.0;
/// After the burst, one more identity per this long.
pub const STRANGER_REFILL: Duration = Duration::from_secs(10);
/// Addresses tracked at most; the ones whose bucket is full again are forgotten first.
const MAX_ADDRESSES: usize = 4096;
/// Peers welcomed at most (members and verified peers).
const MAX_WELCOME: usize = 65_536;
/// Inbound peers whose address is remembered, so that one refused after it left is charged.
const MAX_REMEMBERED_PEERS: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("too many refused identities from {0}")]
struct Throttled(IpAddr);

/// A token bucket of one address.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn level(&self, now: Instant) -> f64 {
        let refill = now.duration_since(self.at).as_secs_f64() / STRANGER_REFILL.as_secs_f64();
        (self.tokens + refill).min(STRANGER_BURST)
    }
}

/// The behaviour.
#[derive(Default)]
pub(super) struct StrangerGate {
    /// Members of our fields and peers we verified: never throttled.
    welcome: HashSet<PeerId>,
    buckets: HashMap<IpAddr, Bucket>,
    /// The address each inbound peer came from, newest last: kept after it leaves (a key
    /// that hangs up mid-handshake is charged too), the oldest forgotten first.
    addresses: HashMap<PeerId, IpAddr>,
    arrivals: VecDeque<PeerId>,
}

impl StrangerGate {
    /// Peers that are never throttled (added to those already welcome).
    pub(super) fn welcome(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        for peer in peers {
            if self.welcome.len() >= MAX_WELCOME {
                break;
            }
            self.welcome.insert(peer);
        }
    }

    /// The handshake refused `peer`, which has no standing: its address spends a token.
    pub(super) fn refused(&mut self, peer: PeerId) {
        if self.welcome.contains(&peer) {
            return;
        }
        // Charged once: the entry goes with the charge.
        let Some(ip) = self.addresses.remove(&peer) else {
            return;
        };
        let now = Instant::now();
        if self.buckets.len() >= MAX_ADDRESSES && !self.buckets.contains_key(&ip) {
            self.buckets
                .retain(|_, bucket| bucket.level(now) < STRANGER_BURST);
            if self.buckets.len() >= MAX_ADDRESSES {
                // Every tracked address is throttled: keep them, track no new one.
                return;
            }
        }
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: STRANGER_BURST,
            at: now,
        });
        bucket.tokens = (bucket.level(now) - 1.0).max(-1.0);
        bucket.at = now;
        if bucket.tokens < 0.0 {
            tracing::warn!(%ip, "address throttled: too many refused identities");
        }
    }

    fn throttled(&self, ip: IpAddr) -> bool {
        self.buckets
            .get(&ip)
            .is_some_and(|bucket| bucket.level(Instant::now()) < 1.0)
    }
}

fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for StrangerGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = ip_of(remote) {
            if !self.welcome.contains(&peer) && self.throttled(ip) {
                return Err(ConnectionDenied::new(Throttled(ip)));
            }
            if self.addresses.insert(peer, ip).is_none() {
                self.arrivals.push_back(peer);
                while self.arrivals.len() > MAX_REMEMBERED_PEERS {
                    if let Some(oldest) = self.arrivals.pop_front() {
                        self.addresses.remove(&oldest);
                    }
                }
            }
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(gate: &mut StrangerGate, peer: PeerId, address: &Multiaddr) -> bool {
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        gate.handle_established_inbound_connection(
            ConnectionId::new_unchecked(1),
            peer,
            &local,
            address,
        )
        .is_ok()
    }

    #[test]
    fn an_address_sending_refused_identities_is_throttled_but_members_pass() {
        let mut gate = StrangerGate::default();
        let address: Multiaddr = "/ip4/203.0.113.7/tcp/4000".parse().unwrap();
        let elsewhere: Multiaddr = "/ip4/203.0.113.8/tcp/4000".parse().unwrap();
        let member = PeerId::random();
        gate.welcome([member]);
        for _ in 0..STRANGER_BURST as usize {
            let stranger = PeerId::random();
            assert!(connect(&mut gate, stranger, &address));
            gate.refused(stranger);
        }
        assert!(!connect(&mut gate, PeerId::random(), &address), "throttled");
        assert!(
            connect(&mut gate, member, &address),
            "a member is never throttled"
        );
        assert!(
            connect(&mut gate, PeerId::random(), &elsewhere),
            "another address is not"
        );
        // A refused member costs its address nothing.
        gate.refused(member);
        assert!(connect(&mut gate, PeerId::random(), &elsewhere));
    }

    #[test]
    fn a_throttled_address_is_let_in_again_as_its_bucket_refills() {
        let bucket = Bucket {
            tokens: -1.0,
            at: Instant::now() - STRANGER_REFILL * 2,
        };
        assert!(bucket.level(Instant::now()) >= 1.0);
    }
}
