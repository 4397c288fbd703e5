//! One connection's side of the field meshes: the substreams it opens and accepts, and what it retries.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::swarm::handler::{
    AddressChange as HandlerAddressChange, ConnectionEvent, ConnectionHandler,
    ConnectionHandlerEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
    InboundUpgradeSend, ListenUpgradeError, ProtocolsChange, StreamUpgradeError, SubstreamProtocol,
    UpgradeInfoSend,
};

use super::{
    FIRST_RETRY, InnerHandler, InnerInbound, InnerOut, InnerOutbound, MAX_OPEN_ATTEMPTS, MeshIn,
    mesh_protocol,
};

/// A field's stream that the peer did not offer yet, to open again.
pub(super) struct Retry {
    protocol: SubstreamProtocol<InnerOutbound, ()>,
    attempts: u32,
    /// Due now (`None`: the peer now offers it), or when the timer fires.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether an attempt is under way: never two at once.
    in_flight: bool,
}

/// The gossipsub handlers of the fields whose gossip runs on one connection.
pub(crate) struct MeshHandler {
    handlers: BTreeMap<String, InnerHandler>,
    /// Outbound streams requested, by field: made again if the peer refuses the protocol.
    requested: HashMap<String, SubstreamProtocol<InnerOutbound, ()>>,
    retries: HashMap<String, Retry>,
    /// Where the next poll starts, so that every field gets its turn.
    next: usize,
}

type MeshEvent = ConnectionHandlerEvent<InnerOutbound, String, (String, InnerOut)>;

impl MeshHandler {
    pub(super) fn new() -> Self {
        Self {
            handlers: BTreeMap::new(),
            requested: HashMap::new(),
            retries: HashMap::new(),
            next: 0,
        }
    }

    pub(super) fn forget(&mut self, field: &str) {
        self.requested.remove(field);
        self.retries.remove(field);
    }

    /// The peer refused a field's protocol: it has not allowed us yet. Try again when it
    /// says it offers the protocol, or after a backoff; give up after a few attempts.
    pub(super) fn retry_later(&mut self, field: String) {
        let Some(protocol) = self.requested.remove(&field) else {
            return;
        };
        let attempts = self.retries.get(&field).map_or(0, |retry| retry.attempts) + 1;
        // Past the last attempt, only the peer's identify push (it offers the protocol now)
        // tries again.
        let wait = if attempts > MAX_OPEN_ATTEMPTS {
            tracing::debug!(field, "the peer does not offer the field's gossip yet");
            Duration::from_secs(3600)
        } else {
            FIRST_RETRY * 2u32.saturating_pow(attempts - 1)
        };
        self.retries.insert(
            field,
            Retry {
                protocol,
                attempts,
                timer: Some(Box::pin(tokio::time::sleep(wait))),
                in_flight: false,
            },
        );
    }

    pub(super) fn due_retry(&mut self, cx: &mut Context<'_>) -> Option<MeshEvent> {
        let due = self.retries.iter_mut().find_map(|(field, retry)| {
            if retry.in_flight {
                return None;
            }
            let ready = match &mut retry.timer {
                None => true,
                Some(timer) => timer.poll_unpin(cx).is_ready(),
            };
            ready.then(|| field.clone())
        })?;
        let retry = self.retries.get_mut(&due)?;
        retry.in_flight = true;
        retry.timer = None;
        let protocol = copy_protocol(&retry.protocol);
        self.requested
            .insert(due.clone(), copy_protocol(&retry.protocol));
        Some(ConnectionHandlerEvent::OutboundSubstreamRequest {
            protocol: protocol.map_info(|()| due),
        })
    }
}

pub(super) fn copy_protocol(
    protocol: &SubstreamProtocol<InnerOutbound, ()>,
) -> SubstreamProtocol<InnerOutbound, ()> {
    SubstreamProtocol::new(protocol.upgrade().clone(), ()).with_timeout(*protocol.timeout())
}

/// The inbound protocols of every field running on a connection.
pub(crate) struct FieldUpgrade {
    upgrades: Vec<(String, InnerInbound)>,
}

/// One protocol name of a [`FieldUpgrade`]: which field's upgrade, and its own name.
#[derive(Debug, Clone)]
pub(crate) struct FieldProtocol(usize, <InnerInbound as UpgradeInfoSend>::Info);

impl AsRef<str> for FieldProtocol {
    fn as_ref(&self) -> &str {
        AsRef::<str>::as_ref(&self.1)
    }
}

impl UpgradeInfoSend for FieldUpgrade {
    type Info = FieldProtocol;
    type InfoIter = std::vec::IntoIter<FieldProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.upgrades
            .iter()
            .enumerate()
            .flat_map(|(index, (_, upgrade))| {
                upgrade
                    .protocol_info()
                    .map(move |info| FieldProtocol(index, info))
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl InboundUpgradeSend for FieldUpgrade {
    type Output = (String, <InnerInbound as InboundUpgradeSend>::Output);
    type Error = (String, <InnerInbound as InboundUpgradeSend>::Error);
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(
        mut self,
        stream: libp2p::swarm::Stream,
        info: FieldProtocol,
    ) -> Self::Future {
        let FieldProtocol(index, info) = info;
        if index >= self.upgrades.len() {
            // The swarm negotiates only names this upgrade listed.
            return futures::future::pending().boxed();
        }
        let (field, upgrade) = self.upgrades.swap_remove(index);
        upgrade
            .upgrade_inbound(stream, info)
            .map(move |outcome| match outcome {
                Ok(output) => Ok((field, output)),
                Err(error) => Err((field, error)),
            })
            .boxed()
    }
}

impl ConnectionHandler for MeshHandler {
    type FromBehaviour = MeshIn;
    type ToBehaviour = (String, InnerOut);
    type InboundProtocol = FieldUpgrade;
    type OutboundProtocol = InnerOutbound;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = String;

    fn listen_protocol(&self) -> SubstreamProtocol<FieldUpgrade, ()> {
        let mut timeout = Duration::ZERO;
        let upgrades = self
            .handlers
            .iter()
            .map(|(field, handler)| {
                let protocol = handler.listen_protocol();
                timeout = timeout.max(*protocol.timeout());
                let (upgrade, ()) = protocol.into_upgrade();
                (field.clone(), upgrade)
            })
            .collect();
        SubstreamProtocol::new(FieldUpgrade { upgrades }, ()).with_timeout(timeout)
    }

    fn on_behaviour_event(&mut self, event: MeshIn) {
        match event {
            MeshIn::Install(field, handler) => {
                self.forget(&field);
                self.handlers.insert(field, *handler);
            }
            MeshIn::Remove(field) => {
                self.forget(&field);
                self.handlers.remove(&field);
            }
            MeshIn::Inner(field, event) => {
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_behaviour_event(event);
                }
            }
        }
    }

    fn connection_keep_alive(&self) -> bool {
        self.handlers
            .values()
            .any(ConnectionHandler::connection_keep_alive)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<FieldUpgrade, InnerOutbound, (), String>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (field, output),
                ..
            }) => {
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::FullyNegotiatedInbound(
                        FullyNegotiatedInbound {
                            protocol: output,
                            info: (),
                        },
                    ));
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol,
                info: field,
            }) => {
                self.forget(&field);
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::FullyNegotiatedOutbound(
                        FullyNegotiatedOutbound { protocol, info: () },
                    ));
                }
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError {
                info: field,
                error: StreamUpgradeError::NegotiationFailed,
            }) if self.handlers.contains_key(&field) => self.retry_later(field),
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: field, error }) => {
                self.requested.remove(&field);
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::DialUpgradeError(
                        DialUpgradeError { info: (), error },
                    ));
                }
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError {
                error: (field, error),
                ..
            }) => {
                if let Some(handler) = self.handlers.get_mut(&field) {
                    handler.on_connection_event(ConnectionEvent::ListenUpgradeError(
                        ListenUpgradeError { info: (), error },
                    ));
                }
            }
            ConnectionEvent::AddressChange(HandlerAddressChange { new_address }) => {
                for handler in self.handlers.values_mut() {
                    handler.on_connection_event(ConnectionEvent::AddressChange(
                        HandlerAddressChange { new_address },
                    ));
                }
            }
            ConnectionEvent::LocalProtocolsChange(change) => {
                for handler in self.handlers.values_mut() {
                    handler
                        .on_connection_event(ConnectionEvent::LocalProtocolsChange(change.clone()));
                }
            }
            ConnectionEvent::RemoteProtocolsChange(change) => {
                if let ProtocolsChange::Added(added) = &change {
                    let offered: Vec<String> =
                        added.clone().map(|protocol| protocol.to_string()).collect();
                    for (field, retry) in &mut self.retries {
                        if !retry.in_flight && offered.contains(&mesh_protocol(field)) {
                            retry.timer = None;
                        }
                    }
                }
                for handler in self.handlers.values_mut() {
                    handler.on_connection_event(ConnectionEvent::RemoteProtocolsChange(
                        change.clone(),
                    ));
                }
            }
            _ => {}
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<MeshEvent> {
        if let Some(request) = self.due_retry(cx) {
            return Poll::Ready(request);
        }
        let fields: Vec<String> = self.handlers.keys().cloned().collect();
        let count = fields.len();
        for offset in 0..count {
            let field = &fields[(self.next + offset) % count];
            let Some(handler) = self.handlers.get_mut(field) else {
                continue;
            };
            let Poll::Ready(event) = handler.poll(cx) else {
                continue;
            };
            self.next = (self.next + offset + 1) % count;
            let event = match event {
                ConnectionHandlerEvent::OutboundSubstreamRequest { protocol } => {
                    self.requested
                        .insert(field.clone(), copy_protocol(&protocol));
                    let field = field.clone();
                    ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: protocol.map_info(|()| field),
                    }
                }
                other => {
                    let field = field.clone();
                    other
                        .map_outbound_open_info(|()| field.clone())
                        .map_custom(|event| (field, event))
                }
            };
            return Poll::Ready(event);
        }
        Poll::Pending
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        let mut closing = false;
        for (field, handler) in &mut self.handlers {
            match handler.poll_close(cx) {
                Poll::Ready(Some(event)) => return Poll::Ready(Some((field.clone(), event))),
                Poll::Ready(None) => {}
                Poll::Pending => closing = true,
            }
        }
        if closing {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}
