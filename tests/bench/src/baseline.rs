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
