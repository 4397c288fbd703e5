//! The physical limit of a handshake: a bare libp2p connection (TCP + Noise + Yamux, the same
//! transport) and one request-response round trip, with no credentials at all.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm, noise, tcp, yamux};

type Behaviour = request_response::json::Behaviour<String, String>;

fn swarm() -> anyhow::Result<Swarm<Behaviour>> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            request_response::json::Behaviour::new(
                [(
                    StreamProtocol::new("/tfc-bench/echo/1"),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(30)))
        .build())
}

/// Measures `count` connect-and-round-trip cycles; returns the samples and the wall time.
pub(crate) async fn connect_and_round_trip(
    count: u32,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let mut server = swarm()?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let address: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let server_id = *server.local_peer_id();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = server.select_next_some().await
            {
                let _ = server.behaviour_mut().send_response(channel, request);
            }
        }
    });
    let mut client = swarm()?;
    let mut samples = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for _ in 0..count {
        let begin = Instant::now();
        client.dial(address.clone())?;
        loop {
            match client.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => {
                    client
                        .behaviour_mut()
                        .send_request(&server_id, "ping".to_owned());
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }) => break,
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(error).context("baseline dial failed");
                }
                _ => {}
            }
        }
        samples.push(begin.elapsed());
        let _ = client.disconnect_peer_id(server_id);
        loop {
            if let SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } = client.select_next_some().await
            {
                break;
            }
        }
    }
    Ok((samples, started.elapsed()))
}

/// The physical limit of revocation: one 1 KiB gossipsub message from the first of `nodes`
/// bare swarms (same transport, same mesh settings, no validation) to the last to receive
/// it. Returns one sample per round and the wall time.
pub(crate) async fn gossip_propagation(
    nodes: usize,
    rounds: u32,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId};
    use sha2::Digest;
    use tokio::sync::mpsc;

    let topic = IdentTopic::new("tfc-bench/gossip");
    let (received, mut receipts) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut publishers = Vec::new();
    let mut addresses: Vec<Multiaddr> = Vec::new();
    for index in 0..nodes {
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .message_id_fn(|message| MessageId::new(&sha2::Sha256::digest(&message.data)))
            .heartbeat_initial_delay(Duration::from_millis(100))
            .heartbeat_interval(Duration::from_millis(500))
            .build()
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let behaviour: gossipsub::Behaviour =
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| behaviour)?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build();
        swarm.behaviour_mut().subscribe(&topic)?;
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        // A star on the first node plus a chain, like bootstrap plus discovery.
        if index > 0 {
            swarm.dial(addresses[0].clone())?;
            swarm.dial(addresses[index - 1].clone())?;
        }
        addresses.push(address);
        let (publish, mut commands) = mpsc::unbounded_channel::<Vec<u8>>();
        publishers.push(publish);
        let received = received.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    data = commands.recv() => match data {
                        Some(data) => { let _ = swarm.behaviour_mut().publish(topic.clone(), data); }
                        None => break,
                    },
                    event = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(gossipsub::Event::Message { .. }) = event {
                            let _ = received.send((index, Instant::now()));
                        }
                    }
                }
            }
        });
    }
    // Warm up until a message reaches everyone: the mesh has formed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warm = false;
    let mut serial = 0u64;
    while !warm {
        anyhow::ensure!(Instant::now() < deadline, "the gossip mesh did not form");
        serial += 1;
        publishers[0].send(serial.to_be_bytes().repeat(128))?;
        warm = collect(&mut receipts, nodes - 1, Duration::from_millis(500))
            .await
            .is_some();
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..rounds {
        serial += 1;
        let sent = Instant::now();
        publishers[0].send(serial.to_be_bytes().repeat(128))?;
        let last = collect(&mut receipts, nodes - 1, Duration::from_secs(10))
            .await
            .context("a gossip message did not reach every node")?;
        samples.push(last - sent);
    }
    Ok((samples, started.elapsed()))
}

/// The time of the `count`-th receipt, unless `patience` runs out first.
async fn collect(
    receipts: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)>,
    count: usize,
    patience: Duration,
) -> Option<Instant> {
    let mut last = None;
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + patience;
    while seen.len() < count {
        let (node, at) = tokio::time::timeout_at(deadline, receipts.recv())
            .await
            .ok()??;
        seen.insert(node);
        last = Some(at);
    }
    // Late copies of this message must not count for the next one.
    while receipts.try_recv().is_ok() {}
    last
}

/// The physical limit of a remote record read: one request-response round trip of the same
/// sizes (a `request_bytes` request, a `response_bytes` answer) over a connection that stays
/// open, as a member's connection to a holder does. Returns the samples and the wall time.
pub(crate) async fn persistent_round_trip(
    count: u32,
    request_bytes: usize,
    response_bytes: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let mut server = swarm()?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let address: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let server_id = *server.local_peer_id();
    let answer = "r".repeat(response_bytes);
    let serving = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = server.select_next_some().await
            {
                let _ = server
                    .behaviour_mut()
                    .send_response(channel, answer.clone());
            }
        }
    });
    let mut client = swarm()?;
    client.dial(address)?;
    loop {
        match client.select_next_some().await {
            SwarmEvent::ConnectionEstablished { .. } => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                return Err(error).context("baseline dial failed");
            }
            _ => {}
        }
    }
    let request = "q".repeat(request_bytes);
    let mut samples = Vec::with_capacity(count as usize);
    // One unmeasured round trip opens the protocol's first stream.
    for round in 0..=count {
        let begin = Instant::now();
        client
            .behaviour_mut()
            .send_request(&server_id, request.clone());
        loop {
            match client.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }) => break,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => return Err(error).context("baseline request failed"),
                _ => {}
            }
        }
        if round > 0 {
            samples.push(begin.elapsed());
        }
    }
    serving.abort();
    let wall = samples.iter().sum();
    Ok((samples, wall))
}
