//! A discrete-event model of gossip propagation in a field of thousands of gateways.
//!
//! The loopback scenarios measure real gateways, but only tens of them on one machine. This
//! model extrapolates: it replays gossipsub v1.1 as the gateway configures it (flood
//! publishing, forwarding only after validation, content-hash ids, IHAVE/IWANT gossip) over
//! a random field, with the CPU costs the caller measured. Its loopback mode (every gateway
//! connected to every other, all sharing a few cores) can be set beside the real figures to
//! see whether the model is calibrated.
//!
//! Simplifications, echoed in the report: the mesh is grafted once per round and never
//! maintained (no GRAFT/PRUNE, no scores, so `mesh_d_lo` is unused); control messages cost
//! latency and bytes but neither CPU nor uplink time; receiving costs no CPU except
//! validation, and duplicates are dropped for free; a heal starts every cross connection at
//! once and counts the intra-side connections of the healed field as never lost.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde_json::{Value, json};

/// Every assumption of the model; the report echoes them so that its figures say what they
/// rest on.
#[derive(Clone, Debug)]
pub(crate) struct ModelInputs {
    /// Gossipsub mesh degree D: peers each node grafts.
    pub(crate) mesh_d: usize,
    /// D_lo: echoed only, since the mesh is never maintained after grafting.
    pub(crate) mesh_d_lo: usize,
    /// D_hi: a node accepts grafts until its mesh has this many peers (at most 32).
    pub(crate) mesh_d_hi: usize,
    /// D_lazy: the fewest non-mesh peers an IHAVE goes to at each heartbeat.
    pub(crate) mesh_d_lazy: usize,
    /// Share of non-mesh peers an IHAVE goes to, when more than D_lazy.
    pub(crate) gossip_factor: f64,
    /// Heartbeat period (each node's phase is random).
    pub(crate) heartbeat_ms: f64,
    /// Heartbeats during which a received message is still announced by IHAVE.
    pub(crate) history_gossip: u32,
    /// The publisher sends to every connected peer, not only its mesh.
    pub(crate) flood_publish: bool,
    /// Peers each gateway is connected to in a large field (its share of the 512 slots).
    pub(crate) max_connected_peers: usize,
    /// Cores each gateway validates and sends on (WAN mode).
    pub(crate) cores_per_gateway: usize,
    /// Each gateway's uplink; copies of a message serialise on it.
    pub(crate) uplink_bytes_per_second: f64,
    /// CPU per copy sent (encryption and framing).
    pub(crate) send_us: f64,
    /// Shortest round-trip time between two gateways; each pair's is uniform in the range.
    pub(crate) rtt_min_ms: f64,
    /// Longest round-trip time between two gateways.
    pub(crate) rtt_max_ms: f64,
    /// CPU to validate a revocation (a governance op), measured by the caller.
    pub(crate) validation_us_op: f64,
    /// CPU to validate an indicator (a threat bundle), measured by the caller.
    pub(crate) validation_us_indicator: f64,
    /// CPU on each side of the mutual handshake after a connection opens.
    pub(crate) handshake_us: f64,
    /// A revocation's size on the wire.
    pub(crate) op_bytes: u64,
    /// An indicator's size on the wire.
    pub(crate) indicator_bytes: u64,
    /// An IHAVE's or IWANT's size on the wire.
    pub(crate) control_bytes: u64,
    /// Messages of one handshake (with its anti-entropy request), both directions together.
    pub(crate) handshake_messages: u64,
    /// Bytes of each of those messages.
    pub(crate) handshake_bytes: u64,
    /// Round-trip time between two gateways on one machine (loopback mode).
    pub(crate) loopback_rtt_ms: f64,
    /// Cores all gateways share in the loopback calibration of `report`.
    pub(crate) loopback_shared_cores: usize,
    /// Seed of every random choice, so that a report can be reproduced.
    pub(crate) seed: u64,
    /// Events simulated per field size, each with a fresh field, mesh and publisher.
    pub(crate) rounds: u32,
    /// Upper bound on rounds × gateways per figure, so that the largest fields stay quick
    /// (their `rounds` says how many were run).
    pub(crate) max_gateway_rounds: u64,
}

impl Default for ModelInputs {
    fn default() -> Self {
        Self {
            mesh_d: 6,
            mesh_d_lo: 5,
            mesh_d_hi: 12,
            mesh_d_lazy: 6,
            gossip_factor: 0.25,
            heartbeat_ms: 500.0,
            history_gossip: 3,
            flood_publish: true,
            max_connected_peers: 256,
            cores_per_gateway: 1,
            uplink_bytes_per_second: 12.5e6,
            send_us: 15.0,
            rtt_min_ms: 20.0,
            rtt_max_ms: 150.0,
            validation_us_op: 100.0,
            validation_us_indicator: 100.0,
            handshake_us: 3_000.0,
            op_bytes: 1_500,
            indicator_bytes: 1_000,
            control_bytes: 60,
            handshake_messages: 4,
            handshake_bytes: 3_000,
            loopback_rtt_ms: 0.1,
            loopback_shared_cores: 2,
            seed: 0x7fc_5ca1e,
            rounds: 200,
            max_gateway_rounds: 1_000_000,
        }
    }
}

/// What is gossiped: the two differ in size and validation cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// A governance op suspending a member.
    Revocation,
    /// A threat bundle.
    Indicator,
}

/// Where the field runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Gateways spread over the internet, each with its own cores and uplink.
    Wan,
    /// Every gateway on one machine, connected to every other, all sharing `shared_cores`
    /// (the setting of the real loopback benchmarks).
    Loopback {
        /// Cores every validation and send of every gateway queues on.
        shared_cores: usize,
    },
}

/// One event's propagation from a random publisher, over `rounds` rounds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PropagationFigures {
    /// Gateways in the field.
    pub(crate) n: usize,
    /// Rounds simulated.
    pub(crate) rounds: u32,
    /// Median over rounds of the time until every gateway holds the event.
    pub(crate) p50_last_ms: f64,
    /// 99th percentile over rounds of that time.
    pub(crate) p99_last_ms: f64,
    /// Median over rounds of the time until 99% of gateways hold it.
    pub(crate) p50_99pct_ms: f64,
    /// 99th percentile over rounds of that time.
    pub(crate) p99_99pct_ms: f64,
    /// Messages each gateway receives per event: copies, duplicates and control.
    pub(crate) messages_per_gateway: f64,
    /// Bytes each gateway receives per event.
    pub(crate) bytes_per_gateway: f64,
    /// Copies each gateway receives after its first.
    pub(crate) duplicates_per_gateway: f64,
    /// Rounds in which some gateway never got the event (their times count as infinite).
    pub(crate) incomplete_rounds: u32,
}

/// A split field healing: side B lacked one op, side A held it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HealFigures {
    /// Gateways in the field (both sides).
    pub(crate) n: usize,
    /// Rounds simulated.
    pub(crate) rounds: u32,
    /// Median over rounds of the time from healing until 99% of side B hold the op.
    pub(crate) p50_99pct_ms: f64,
    /// 99th percentile over rounds of the time until all of side B hold it.
    pub(crate) p99_last_ms: f64,
    /// Longest time until all of side B hold it.
    pub(crate) max_last_ms: f64,
    /// Messages each gateway (of both sides) receives: handshakes, the op, gossip.
    pub(crate) messages_per_gateway: f64,
    /// Bytes each gateway receives.
    pub(crate) bytes_per_gateway: f64,
}

/// Simulates `inputs.rounds` publications of one event in a field of `n` gateways.
pub(crate) fn propagate(
    inputs: &ModelInputs,
    n: usize,
    kind: EventKind,
    mode: Mode,
) -> PropagationFigures {
    assert!(n >= 2, "a field needs two gateways");
    // The same seeds for both kinds, so that they are compared on the same fields.
    let outcomes = simulate(inputs, n, mode, 0, |rng, field, sim| {
        graft(&field.peers, &mut field.mesh, rng, inputs);
        let publisher = rng.below(n) as u32;
        let params = Params::new(inputs, mode, kind, rng.next(), publisher);
        sim.publish(&params, &field.peers, &field.mesh, inputs.flood_publish);
        sim.run(&params, &field.peers, &field.mesh);
    });
    outcomes.propagation(n)
}

/// Simulates `inputs.rounds` heals of a field of `n` gateways split into two halves.
pub(crate) fn heal(inputs: &ModelInputs, n: usize, mode: Mode) -> HealFigures {
    assert!(n >= 4, "a split field needs two gateways on each side");
    let outcomes = simulate(inputs, n, mode, 0x4ea1, |rng, field, sim| {
        field.split(n / 2);
        graft(&field.local, &mut field.mesh, rng, inputs);
        let params = Params::new(inputs, mode, EventKind::Revocation, rng.next(), NONE);
        sim.start_heal(&params, &field.cross, n / 2);
        sim.run(&params, &field.local, &field.mesh);
    });
    outcomes.heal(n)
}

/// Runs the rounds, each on a freshly connected field and from a fresh seed.
fn simulate(
    inputs: &ModelInputs,
    n: usize,
    mode: Mode,
    salt: u64,
    mut round: impl FnMut(&mut Rng, &mut Field, &mut Sim),
) -> Outcomes {
    let (mut field, mut sim, mut outcomes) =
        (Field::default(), Sim::default(), Outcomes::default());
    for index in 0..rounds_for(inputs, n) {
        let mut rng = Rng(mix(inputs.seed ^ mix(n as u64 ^ salt) ^ u64::from(index)));
        field.connect(&mut rng, n, degree(inputs, n, mode));
        sim.reset(n, inputs, mode, rng.next());
        round(&mut rng, &mut field, &mut sim);
        outcomes.add(&sim);
    }
    outcomes
}

/// Runs every figure: revocations, indicators and heals at each WAN size, and the loopback
/// calibration at each loopback size.
pub(crate) fn report(inputs: &ModelInputs, sizes: &[usize], loopback_sizes: &[usize]) -> Value {
    let wan: Vec<Value> = sizes
        .iter()
        .map(|&n| figures_at(inputs, n, Mode::Wan))
        .collect();
    let shared_cores = inputs.loopback_shared_cores;
    let loopback: Vec<Value> = loopback_sizes
        .iter()
        .map(|&n| figures_at(inputs, n, Mode::Loopback { shared_cores }))
        .collect();
    let goal = wan.iter().find(|size| size["n"] == 1000).map(|size| {
        size["revocation"]["p99_99pct_ms"]
            .as_f64()
            .is_some_and(|ms| ms < 1_000.0)
    });
    json!({
        "model": "discrete-event gossipsub v1.1: flood publish, validate-then-forward, IHAVE/IWANT",
        "simplifications": [
            "mesh grafted once per round, never maintained (no GRAFT/PRUNE, no scores; D_lo unused)",
            "control messages cost latency and bytes, not CPU or uplink",
            "receiving costs no CPU but validation; duplicates dropped for free",
            "heal: every cross connection dialled at once; intra-side connections never lost",
        ],
        "inputs": inputs_json(inputs),
        "wan": wan,
        "loopback": loopback,
        "goal_revocation_99pct_1000_within_1s": goal,
    })
}

/// Prints a report made by [`report`] as aligned tables.
pub(crate) fn print(report: &Value) {
    let inputs = &report["inputs"];
    let assumptions: Vec<String> = (inputs.as_object().into_iter().flatten())
        .map(|(key, value)| format!("{key} {value}"))
        .collect();
    println!("scale model of gossip, assuming:");
    for line in assumptions.chunks(6) {
        println!("  {}", line.join(", "));
    }
    let cores = &inputs["loopback_shared_cores"];
    for (title, sizes) in [
        ("WAN".to_owned(), &report["wan"]),
        (
            format!("loopback, {cores} shared cores"),
            &report["loopback"],
        ),
    ] {
        let sizes = sizes.as_array().map_or(&[][..], Vec::as_slice);
        println!(
            "\n{title}: propagation (ms; messages, duplicates and bytes per gateway per event)"
        );
        print_table(sizes, &["revocation", "indicator"], &PROPAGATION_COLUMNS);
        println!("{title}: heal, side B lacking one op (ms from healing; per gateway)");
        print_table(sizes, &["heal"], &HEAL_COLUMNS);
    }
    match report["goal_revocation_99pct_1000_within_1s"].as_bool() {
        Some(met) => println!("\ngoal: 99% of 1000 gateways hold a revocation < 1 s (p99): {met}"),
        None => println!("\ngoal: not evaluated (1000 gateways not simulated)"),
    }
}

/// Table headers and the JSON keys they show.
const PROPAGATION_COLUMNS: [(&str, &str); 7] = [
    ("p50 99%", "p50_99pct_ms"),
    ("p99 99%", "p99_99pct_ms"),
    ("p50 last", "p50_last_ms"),
    ("p99 last", "p99_last_ms"),
    ("msgs", "messages_per_gateway"),
    ("dups", "duplicates_per_gateway"),
    ("bytes", "bytes_per_gateway"),
];
const HEAL_COLUMNS: [(&str, &str); 5] = [
    ("p50 99%", "p50_99pct_ms"),
    ("p99 last", "p99_last_ms"),
    ("max last", "max_last_ms"),
    ("msgs", "messages_per_gateway"),
    ("bytes", "bytes_per_gateway"),
];

fn print_table(sizes: &[Value], kinds: &[&str], columns: &[(&str, &str)]) {
    let headers: String = columns
        .iter()
        .map(|(name, _)| format!(" {name:>9}"))
        .collect();
    println!("{:>8} {:<10} {:>6}{headers}", "gateways", "event", "rounds");
    for size in sizes {
        for &kind in kinds {
            let figures = &size[kind];
            // `Value`'s `Display` ignores widths; NaN stands for an infinite time (null).
            let cells: String = columns
                .iter()
                .map(|(_, key)| format!(" {:>9.1}", figures[key].as_f64().unwrap_or(f64::NAN)))
                .collect();
            let (n, rounds) = (size["n"].as_u64().unwrap_or(0), &figures["rounds"]);
            println!(
                "{n:>8} {kind:<10} {:>6}{cells}",
                rounds.as_u64().unwrap_or(0)
            );
        }
    }
}

fn figures_at(inputs: &ModelInputs, n: usize, mode: Mode) -> Value {
    let revocation = propagate(inputs, n, EventKind::Revocation, mode);
    let indicator = propagate(inputs, n, EventKind::Indicator, mode);
    let healed = heal(inputs, n, mode);
    let mut size = json!({
        "n": n,
        "revocation": propagation_json(&revocation),
        "indicator": propagation_json(&indicator),
        "heal": heal_json(&healed),
    });
    if let Mode::Loopback { shared_cores } = mode {
        size["shared_cores"] = json!(shared_cores);
    }
    size
}

fn propagation_json(f: &PropagationFigures) -> Value {
    json!({
        "n": f.n, "rounds": f.rounds,
        "p50_last_ms": f.p50_last_ms, "p99_last_ms": f.p99_last_ms,
        "p50_99pct_ms": f.p50_99pct_ms, "p99_99pct_ms": f.p99_99pct_ms,
        "messages_per_gateway": f.messages_per_gateway, "bytes_per_gateway": f.bytes_per_gateway,
        "duplicates_per_gateway": f.duplicates_per_gateway, "incomplete_rounds": f.incomplete_rounds,
    })
}

fn heal_json(f: &HealFigures) -> Value {
    json!({
        "n": f.n, "rounds": f.rounds, "p50_99pct_ms": f.p50_99pct_ms,
        "p99_last_ms": f.p99_last_ms, "max_last_ms": f.max_last_ms,
        "messages_per_gateway": f.messages_per_gateway, "bytes_per_gateway": f.bytes_per_gateway,
    })
}

fn inputs_json(i: &ModelInputs) -> Value {
    json!({
        "mesh_d": i.mesh_d, "mesh_d_lo": i.mesh_d_lo, "mesh_d_hi": i.mesh_d_hi,
        "mesh_d_lazy": i.mesh_d_lazy, "gossip_factor": i.gossip_factor,
        "heartbeat_ms": i.heartbeat_ms, "history_gossip": i.history_gossip,
        "flood_publish": i.flood_publish, "max_connected_peers": i.max_connected_peers,
        "cores_per_gateway": i.cores_per_gateway,
        "uplink_bytes_per_second": i.uplink_bytes_per_second, "send_us": i.send_us,
        "rtt_min_ms": i.rtt_min_ms, "rtt_max_ms": i.rtt_max_ms,
        "validation_us_op": i.validation_us_op,
        "validation_us_indicator": i.validation_us_indicator, "handshake_us": i.handshake_us,
        "op_bytes": i.op_bytes, "indicator_bytes": i.indicator_bytes,
        "control_bytes": i.control_bytes, "handshake_messages": i.handshake_messages,
        "handshake_bytes": i.handshake_bytes, "loopback_rtt_ms": i.loopback_rtt_ms,
        "loopback_shared_cores": i.loopback_shared_cores, "seed": i.seed, "rounds": i.rounds,
        "max_gateway_rounds": i.max_gateway_rounds,
    })
}

/// `max_gateway_rounds` caps the work (and the run time) of the largest fields.
fn rounds_for(inputs: &ModelInputs, n: usize) -> u32 {
    let budget = (inputs.max_gateway_rounds / n as u64).max(1);
    inputs
        .rounds
        .min(u32::try_from(budget).unwrap_or(u32::MAX))
        .max(1)
}

/// In loopback every gateway is connected to every other, as in the real benchmarks.
fn degree(inputs: &ModelInputs, n: usize, mode: Mode) -> usize {
    match mode {
        Mode::Wan => inputs.max_connected_peers.min(n - 1),
        Mode::Loopback { .. } => n - 1,
    }
}

/// Marks "no gateway" (no publisher) and "never" (not yet received).
const NONE: u32 = u32::MAX;
const NEVER: u64 = u64::MAX;

/// SplitMix64's finaliser: decorrelates seeds that differ in a few bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: small, seeded, and the same on every platform.
#[derive(Default)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..bound` (multiply-high, whose bias is negligible for our bounds).
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next()) * bound as u128) >> 64) as usize
    }
}

/// One round's constants, times in nanoseconds.
struct Params<'a> {
    inputs: &'a ModelInputs,
    salt: u64,
    publisher: u32,
    rtt_min_ns: u64,
    rtt_span_ns: u64,
    validation_ns: u64,
    send_ns: u64,
    handshake_ns: u64,
    ns_per_byte: f64,
    message_bytes: u64,
    heartbeat_ns: u64,
    history: u64,
}

fn ns(ms: f64) -> u64 {
    (ms * 1e6).round().max(0.0) as u64
}

impl<'a> Params<'a> {
    fn new(
        inputs: &'a ModelInputs,
        mode: Mode,
        kind: EventKind,
        salt: u64,
        publisher: u32,
    ) -> Self {
        let (rtt_min, rtt_max, bandwidth) = match mode {
            Mode::Wan => (
                inputs.rtt_min_ms,
                inputs.rtt_max_ms,
                inputs.uplink_bytes_per_second,
            ),
            Mode::Loopback { .. } => (
                inputs.loopback_rtt_ms,
                inputs.loopback_rtt_ms,
                f64::INFINITY,
            ),
        };
        assert!(bandwidth > 0.0, "an uplink needs a positive bandwidth");
        let (validation_us, message_bytes) = match kind {
            EventKind::Revocation => (inputs.validation_us_op, inputs.op_bytes),
            EventKind::Indicator => (inputs.validation_us_indicator, inputs.indicator_bytes),
        };
        Self {
            inputs,
            salt,
            publisher,
            rtt_min_ns: ns(rtt_min),
            rtt_span_ns: ns(rtt_max).saturating_sub(ns(rtt_min)),
            validation_ns: ns(validation_us / 1e3),
            send_ns: ns(inputs.send_us / 1e3),
            handshake_ns: ns(inputs.handshake_us / 1e3),
            ns_per_byte: 1e9 / bandwidth,
            message_bytes,
            heartbeat_ns: ns(inputs.heartbeat_ms).max(1),
            history: u64::from(inputs.history_gossip),
        }
    }

    /// Each pair's latency is a hash of the pair, so it is drawn once per round without
    /// storing N² values, and is the same in both directions.
    fn one_way(&self, a: u32, b: u32) -> u64 {
        let pair = (u64::from(a.min(b)) << 32) | u64::from(a.max(b));
        let h = mix(self.salt ^ mix(pair));
        let rtt =
            self.rtt_min_ns + ((u128::from(h) * u128::from(self.rtt_span_ns + 1)) >> 64) as u64;
        rtt / 2
    }

    fn transmit(&self, bytes: u64) -> u64 {
        (bytes as f64 * self.ns_per_byte).round() as u64
    }

    /// The node's first heartbeat at or after `t`.
    fn heartbeat_from(&self, node: u32, t: u64) -> u64 {
        let phase = ((u128::from(mix(self.salt ^ 0x6ea7 ^ u64::from(node)))
            * u128::from(self.heartbeat_ns))
            >> 64) as u64;
        if t <= phase {
            return phase;
        }
        phase + (t - phase).div_ceil(self.heartbeat_ns) * self.heartbeat_ns
    }
}

/// The connections and meshes of one round, with buffers kept across rounds.
#[derive(Default)]
struct Field {
    /// Every gateway's connected peers.
    peers: Vec<Vec<u32>>,
    /// Every gateway's mesh peers (symmetric).
    mesh: Vec<Vec<u32>>,
    /// In a heal: side B's peers within side B (side A's lists are empty).
    local: Vec<Vec<u32>>,
    /// In a heal: the connections between the sides, as (A, B).
    cross: Vec<(u32, u32)>,
    /// Adjacency bit matrix, to reject a second connection to the same peer in O(1).
    bits: Vec<u64>,
    /// Gateways with a free connection slot, and where each sits in that list.
    open: Vec<u32>,
    position: Vec<u32>,
}

fn reset_lists(lists: &mut Vec<Vec<u32>>, n: usize) {
    lists.resize_with(n, Vec::new);
    lists.iter_mut().for_each(Vec::clear);
}

impl Field {
    /// A random graph in which every gateway has (nearly always exactly) `k` peers.
    fn connect(&mut self, rng: &mut Rng, n: usize, k: usize) {
        reset_lists(&mut self.peers, n);
        if k + 1 >= n {
            for (a, peers) in self.peers.iter_mut().enumerate() {
                peers.extend((0..n as u32).filter(|&b| b as usize != a));
            }
            return;
        }
        self.bits.clear();
        self.bits.resize((n * n).div_ceil(64), 0);
        self.open.clear();
        self.open.extend(0..n as u32);
        self.position.clear();
        self.position.extend(0..n as u32);
        for a in 0..n {
            let mut misses = 0;
            while self.peers[a].len() < k && self.open.len() > 1 && misses < 8 * k {
                let b = self.open[rng.below(self.open.len())] as usize;
                if b == a || self.bits[(a * n + b) / 64] >> ((a * n + b) % 64) & 1 == 1 {
                    misses += 1;
                    continue;
                }
                self.link(n, a, b);
                if self.peers[b].len() >= k {
                    self.close(b);
                }
            }
            self.close(a);
        }
    }

    fn link(&mut self, n: usize, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            self.bits[(x * n + y) / 64] |= 1 << ((x * n + y) % 64);
            self.peers[x].push(y as u32);
        }
    }

    fn close(&mut self, node: usize) {
        let at = self.position[node];
        if at == NONE {
            return;
        }
        self.open.swap_remove(at as usize);
        if let Some(&moved) = self.open.get(at as usize) {
            self.position[moved as usize] = at;
        }
        self.position[node] = NONE;
    }

    /// Gateways `0..half` form side A, the rest side B.
    fn split(&mut self, half: usize) {
        let n = self.peers.len();
        reset_lists(&mut self.local, n);
        self.cross.clear();
        for (a, peers) in self.peers.iter().enumerate() {
            for &b in peers {
                match (a < half, (b as usize) < half) {
                    (true, false) => self.cross.push((a as u32, b)),
                    (false, false) => self.local[a].push(b),
                    _ => {}
                }
            }
        }
    }
}

/// Each node grafts D of its peers, each accepting grafts up to D_hi: a symmetric mesh.
fn graft(links: &[Vec<u32>], mesh: &mut Vec<Vec<u32>>, rng: &mut Rng, inputs: &ModelInputs) {
    let d_hi = inputs.mesh_d_hi.min(32);
    let d = inputs.mesh_d.min(d_hi);
    reset_lists(mesh, links.len());
    for (a, options) in links.iter().enumerate() {
        let mut misses = 0;
        while mesh[a].len() < d && !options.is_empty() && misses < 4 * options.len() + 16 {
            let b = options[rng.below(options.len())];
            if mesh[a].contains(&b) || mesh[b as usize].len() >= d_hi {
                misses += 1;
                continue;
            }
            mesh[a].push(b);
            mesh[b as usize].push(a as u32);
        }
    }
}

/// Something that happens at a gateway at a given time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A copy of the message reaches `to`.
    Deliver { to: u32, from: u32 },
    /// `node`'s application accepted the message.
    Validated { node: u32 },
    /// `node`'s heartbeat while the message is in its gossip window.
    Heartbeat { node: u32 },
    /// `from` announces the message to `to`.
    IHave { to: u32, from: u32 },
    /// `from` asks `to` for the message.
    IWant { to: u32, from: u32 },
    /// The connection between `a` (side A) and `b` (side B) is open; the handshake starts.
    Connected { a: u32, b: u32 },
    /// Both sides of that handshake are done; B asks A what it lacks.
    Handshaken { a: u32, b: u32 },
}

/// Counts of messages received, summed over gateways.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
    duplicates: u64,
}

/// One round's state: what each gateway has, when its cores and uplink are free, and the
/// pending events.
#[derive(Default)]
struct Sim {
    seen_at: Vec<u64>,
    /// Validated (or, in a heal, side A): later copies change nothing.
    held: Vec<bool>,
    /// Which mesh peers (by index in the node's mesh) sent the message: they are not sent it
    /// back, as gossipsub does for the peers it got it from.
    from_mesh: Vec<u32>,
    iwant_pending: Vec<bool>,
    cores: usize,
    shared: bool,
    core_free: Vec<u64>,
    uplink_free: Vec<u64>,
    /// Pending (time, index in `queued`): small entries keep the heap in cache.
    events: BinaryHeap<Reverse<(u64, u32)>>,
    queued: Vec<Event>,
    /// A heal's connections in the order they open, and how many have: kept out of the heap,
    /// which would otherwise hold one entry per cross pair.
    dials: Vec<(u64, u32, u32)>,
    dialled: usize,
    rng: Rng,
    tally: Tally,
    /// Gateways `counted_from..` are those whose holding is measured.
    counted_from: usize,
    holders: usize,
    at_99pct: u64,
    at_last: u64,
    scratch: Vec<u32>,
}

/// Keeps the allocation across rounds.
fn refill<T: Clone>(buffer: &mut Vec<T>, len: usize, value: T) {
    buffer.clear();
    buffer.resize(len, value);
}

impl Sim {
    fn reset(&mut self, n: usize, inputs: &ModelInputs, mode: Mode, seed: u64) {
        (self.cores, self.shared) = match mode {
            Mode::Wan => (inputs.cores_per_gateway.max(1), false),
            Mode::Loopback { shared_cores } => (shared_cores.max(1), true),
        };
        let pools = if self.shared { 1 } else { n };
        refill(&mut self.core_free, pools * self.cores, 0);
        refill(&mut self.seen_at, n, NEVER);
        refill(&mut self.uplink_free, n, 0);
        refill(&mut self.from_mesh, n, 0);
        refill(&mut self.held, n, false);
        refill(&mut self.iwant_pending, n, false);
        self.events.clear();
        self.queued.clear();
        self.dials.clear();
        self.dialled = 0;
        self.rng = Rng(seed);
        self.tally = Tally::default();
        (self.counted_from, self.holders, self.at_99pct, self.at_last) = (0, 0, NEVER, NEVER);
    }

    /// Ties are broken by queueing order, so that runs are deterministic.
    fn push(&mut self, at: u64, event: Event) {
        let index = u32::try_from(self.queued.len()).expect("fewer than 2³² events per round");
        self.queued.push(event);
        self.events.push(Reverse((at, index)));
    }

    /// Queues `cost` on the node's cores (FIFO, earliest free core); returns when it ends.
    fn reserve(&mut self, node: u32, at: u64, cost: u64) -> u64 {
        let pool = if self.shared { 0 } else { node as usize };
        let cores = &mut self.core_free[pool * self.cores..(pool + 1) * self.cores];
        let core = cores.iter_mut().min().expect("at least one core");
        *core = (*core).max(at) + cost;
        *core
    }

    /// Sends one copy: CPU on the sender's cores, then the uplink, then the link; returns
    /// when it arrives.
    fn send(&mut self, p: &Params, from: u32, to: u32, at: u64, bytes: u64) -> u64 {
        let ready = self.reserve(from, at, p.send_ns);
        let uplink = &mut self.uplink_free[from as usize];
        *uplink = (*uplink).max(ready) + p.transmit(bytes);
        *uplink + p.one_way(from, to)
    }

    /// Sends the message; a copy to a gateway that already holds it is a sure duplicate, so
    /// it is counted now rather than queued (most copies are such).
    fn send_message(&mut self, p: &Params, from: u32, to: u32, at: u64) {
        let arrival = self.send(p, from, to, at, p.message_bytes);
        if self.held[to as usize] {
            self.tally.messages += 1;
            self.tally.bytes += p.message_bytes;
            self.tally.duplicates += 1;
        } else {
            self.push(arrival, Event::Deliver { to, from });
        }
    }

    /// Marks when 99% and all of the measured gateways hold the message.
    fn hold(&mut self, node: u32, at: u64) {
        self.held[node as usize] = true;
        if (node as usize) < self.counted_from {
            return;
        }
        self.holders += 1;
        let wanted = self.seen_at.len() - self.counted_from;
        if self.holders == (wanted * 99).div_ceil(100) {
            self.at_99pct = at;
        }
        if self.holders == wanted {
            self.at_last = at;
        }
    }

    fn publish(&mut self, p: &Params, peers: &[Vec<u32>], mesh: &[Vec<u32>], flood: bool) {
        let publisher = p.publisher;
        self.seen_at[publisher as usize] = 0;
        self.hold(publisher, 0);
        let targets = if flood {
            &peers[publisher as usize]
        } else {
            &mesh[publisher as usize]
        };
        for &peer in targets {
            self.send_message(p, publisher, peer, 0);
        }
        self.schedule_gossip(p, publisher, 0);
    }

    /// Side A holds the op; every cross connection opens after 1.5 RTT (TCP + Noise).
    fn start_heal(&mut self, p: &Params, cross: &[(u32, u32)], half: usize) {
        self.counted_from = half;
        self.seen_at[..half].fill(0);
        self.held[..half].fill(true);
        self.dials
            .extend(cross.iter().map(|&(a, b)| (3 * p.one_way(a, b), a, b)));
        self.dials.sort_unstable();
    }

    fn run(&mut self, p: &Params, links: &[Vec<u32>], mesh: &[Vec<u32>]) {
        while let Some((t, event)) = self.next_event() {
            match event {
                Event::Deliver { to, from } => self.deliver(p, mesh, t, to, from),
                Event::Validated { node } => self.validated(p, mesh, t, node),
                Event::Heartbeat { node } => self.heartbeat(p, links, mesh, t, node),
                Event::IHave { to, from } => self.ihave(p, t, to, from),
                Event::IWant { to, from } => self.send_message(p, to, from, t),
                Event::Connected { a, b } => self.connected(p, t, a, b),
                Event::Handshaken { a, b } => self.handshaken(p, t, a, b),
            }
        }
    }

    fn next_event(&mut self) -> Option<(u64, Event)> {
        let queued = self.events.peek().map(|&Reverse((at, _))| at);
        match self.dials.get(self.dialled) {
            Some(&(t, a, b)) if queued.is_none_or(|at| t <= at) => {
                self.dialled += 1;
                Some((t, Event::Connected { a, b }))
            }
            _ => self
                .events
                .pop()
                .map(|Reverse((t, index))| (t, self.queued[index as usize])),
        }
    }

    /// Content-hash ids: a duplicate is recognised and dropped before validation.
    fn deliver(&mut self, p: &Params, mesh: &[Vec<u32>], t: u64, to: u32, from: u32) {
        self.tally.messages += 1;
        self.tally.bytes += p.message_bytes;
        if let Some(index) = mesh[to as usize].iter().position(|&peer| peer == from) {
            self.from_mesh[to as usize] |= 1 << index;
        }
        if self.seen_at[to as usize] != NEVER {
            self.tally.duplicates += 1;
            return;
        }
        self.seen_at[to as usize] = t;
        let done = self.reserve(to, t, p.validation_ns);
        self.push(done, Event::Validated { node: to });
    }

    /// With `validate_messages`, forwarding waits for the application's verdict.
    fn validated(&mut self, p: &Params, mesh: &[Vec<u32>], t: u64, node: u32) {
        self.hold(node, t);
        let senders = self.from_mesh[node as usize];
        for (index, &peer) in mesh[node as usize].iter().enumerate() {
            if senders >> index & 1 == 1 || peer == p.publisher {
                continue;
            }
            self.send_message(p, node, peer, t);
        }
        self.schedule_gossip(p, node, t);
    }

    /// The message is announced at the `history` heartbeats after its receipt (the cache
    /// windows), from the first one at which it is validated.
    fn schedule_gossip(&mut self, p: &Params, node: u32, t: u64) {
        let first = p.heartbeat_from(node, self.seen_at[node as usize] + 1);
        let next = p.heartbeat_from(node, t.max(first));
        if next < first + p.history * p.heartbeat_ns {
            self.push(next, Event::Heartbeat { node });
        }
    }

    fn heartbeat(&mut self, p: &Params, links: &[Vec<u32>], mesh: &[Vec<u32>], t: u64, node: u32) {
        self.emit_gossip(p, &links[node as usize], &mesh[node as usize], t, node);
        self.schedule_gossip(p, node, t + 1);
    }

    /// IHAVE to max(D_lazy, gossip_factor × non-mesh peers) random non-mesh peers. Peers
    /// that already have it only count the bytes, so no event is queued for them.
    fn emit_gossip(&mut self, p: &Params, peers: &[u32], mesh: &[u32], t: u64, node: u32) {
        self.scratch.clear();
        self.scratch.extend_from_slice(peers);
        // The mesh is drawn from these peers.
        let others = peers.len() - mesh.len();
        let lazy = (p.inputs.gossip_factor * others as f64) as usize;
        let fanout = p.inputs.mesh_d_lazy.max(lazy).min(others);
        let (mut chosen, mut i) = (0, 0);
        while chosen < fanout {
            let j = i + self.rng.below(peers.len() - i);
            self.scratch.swap(i, j);
            let peer = self.scratch[i];
            i += 1;
            if mesh.contains(&peer) {
                continue;
            }
            chosen += 1;
            self.tally.messages += 1;
            self.tally.bytes += p.inputs.control_bytes;
            if self.seen_at[peer as usize] == NEVER && !self.iwant_pending[peer as usize] {
                self.push(
                    t + p.one_way(node, peer),
                    Event::IHave {
                        to: peer,
                        from: node,
                    },
                );
            }
        }
    }

    /// A peer asks only once for a message, however many announce it.
    fn ihave(&mut self, p: &Params, t: u64, to: u32, from: u32) {
        if self.seen_at[to as usize] != NEVER || self.iwant_pending[to as usize] {
            return;
        }
        self.iwant_pending[to as usize] = true;
        self.tally.messages += 1;
        self.tally.bytes += p.inputs.control_bytes;
        self.push(t + p.one_way(to, from), Event::IWant { to: from, from: to });
    }

    /// The handshake needs CPU on both sides; it is done when the slower side is. A B that
    /// has the op already will not ask for it, so nothing is queued for it.
    fn connected(&mut self, p: &Params, t: u64, a: u32, b: u32) {
        let done = self
            .reserve(a, t, p.handshake_ns)
            .max(self.reserve(b, t, p.handshake_ns));
        self.tally.messages += p.inputs.handshake_messages;
        self.tally.bytes += p.inputs.handshake_messages * p.inputs.handshake_bytes;
        if self.seen_at[b as usize] == NEVER {
            self.push(done, Event::Handshaken { a, b });
        }
    }

    /// B's anti-entropy request reaches A after one way; A replies with the op unless B
    /// already had it when asking.
    fn handshaken(&mut self, p: &Params, t: u64, a: u32, b: u32) {
        if self.seen_at[b as usize] != NEVER {
            return;
        }
        self.send_message(p, a, b, t + p.one_way(a, b));
    }
}

/// What the rounds produced, for percentiles over rounds.
#[derive(Default)]
struct Outcomes {
    at_99pct_ms: Vec<f64>,
    at_last_ms: Vec<f64>,
    tally: Tally,
}

fn ms(t: u64) -> f64 {
    if t == NEVER {
        f64::INFINITY
    } else {
        t as f64 / 1e6
    }
}

/// Nearest rank on sorted samples; NaN-free since infinite times sort last.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

impl Outcomes {
    fn add(&mut self, sim: &Sim) {
        self.at_99pct_ms.push(ms(sim.at_99pct));
        self.at_last_ms.push(ms(sim.at_last));
        self.tally.messages += sim.tally.messages;
        self.tally.bytes += sim.tally.bytes;
        self.tally.duplicates += sim.tally.duplicates;
    }

    fn sort(&mut self) {
        self.at_99pct_ms.sort_by(f64::total_cmp);
        self.at_last_ms.sort_by(f64::total_cmp);
    }

    fn per_gateway(&self, count: u64, n: usize) -> f64 {
        count as f64 / (n as f64 * self.at_last_ms.len() as f64)
    }

    fn rounds(&self) -> u32 {
        self.at_last_ms.len() as u32
    }

    fn propagation(mut self, n: usize) -> PropagationFigures {
        self.sort();
        PropagationFigures {
            n,
            rounds: self.rounds(),
            p50_last_ms: percentile(&self.at_last_ms, 0.5),
            p99_last_ms: percentile(&self.at_last_ms, 0.99),
            p50_99pct_ms: percentile(&self.at_99pct_ms, 0.5),
            p99_99pct_ms: percentile(&self.at_99pct_ms, 0.99),
            messages_per_gateway: self.per_gateway(self.tally.messages, n),
            bytes_per_gateway: self.per_gateway(self.tally.bytes, n),
            duplicates_per_gateway: self.per_gateway(self.tally.duplicates, n),
            incomplete_rounds: self.at_last_ms.iter().filter(|t| t.is_infinite()).count() as u32,
        }
    }

    fn heal(mut self, n: usize) -> HealFigures {
        self.sort();
        HealFigures {
            n,
            rounds: self.rounds(),
            p50_99pct_ms: percentile(&self.at_99pct_ms, 0.5),
            p99_last_ms: percentile(&self.at_last_ms, 0.99),
            max_last_ms: percentile(&self.at_last_ms, 1.0),
            messages_per_gateway: self.per_gateway(self.tally.messages, n),
            bytes_per_gateway: self.per_gateway(self.tally.bytes, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(rounds: u32) -> ModelInputs {
        ModelInputs {
            rounds,
            ..ModelInputs::default()
        }
    }

    /// No latency, no CPU, no bandwidth limit, no gossip: only the graph remains.
    fn instant() -> ModelInputs {
        ModelInputs {
            rtt_min_ms: 0.0,
            rtt_max_ms: 0.0,
            send_us: 0.0,
            validation_us_op: 0.0,
            uplink_bytes_per_second: f64::INFINITY,
            mesh_d_lazy: 0,
            gossip_factor: 0.0,
            rounds: 20,
            ..ModelInputs::default()
        }
    }

    #[test]
    fn without_costs_everyone_holds_at_once_and_gets_one_copy_plus_duplicates() {
        let n = 30;
        let f = propagate(&instant(), n, EventKind::Revocation, Mode::Wan);
        assert_eq!(
            (f.p99_last_ms, f.p99_99pct_ms, f.incomplete_rounds),
            (0.0, 0.0, 0)
        );
        let first_copies = (n - 1) as f64 / n as f64;
        assert!((f.messages_per_gateway - first_copies - f.duplicates_per_gateway).abs() < 1e-9);
        assert!((f.bytes_per_gateway - 1_500.0 * f.messages_per_gateway).abs() < 1e-6);
    }

    #[test]
    fn flood_publish_over_a_full_field_takes_exactly_one_way() {
        let inputs = ModelInputs {
            rtt_min_ms: 100.0,
            rtt_max_ms: 100.0,
            ..instant()
        };
        let f = propagate(&inputs, 40, EventKind::Revocation, Mode::Wan);
        assert_eq!((f.p50_last_ms, f.p99_last_ms), (50.0, 50.0));
    }

    #[test]
    fn no_gateway_holds_before_the_shortest_one_way_latency() {
        let inputs = rounds(10);
        let f = propagate(&inputs, 600, EventKind::Indicator, Mode::Wan);
        assert_eq!(f.incomplete_rounds, 0);
        assert!(f.p50_99pct_ms >= inputs.rtt_min_ms / 2.0, "{f:?}");
        assert!(
            f.p50_99pct_ms <= f.p50_last_ms && f.p99_99pct_ms <= f.p99_last_ms,
            "{f:?}"
        );
        // Beyond 256 peers, some gateways are only reached through a forwarder.
        assert!(f.p99_last_ms > inputs.rtt_max_ms / 2.0, "{f:?}");
    }

    #[test]
    fn doubling_validation_on_shared_cores_roughly_doubles_the_time() {
        let mode = Mode::Loopback { shared_cores: 2 };
        let at = |us| {
            let inputs = ModelInputs {
                validation_us_op: us,
                send_us: 0.0,
                rounds: 10,
                ..ModelInputs::default()
            };
            propagate(&inputs, 50, EventKind::Revocation, mode).p50_last_ms
        };
        let ratio = at(200.0) / at(100.0);
        assert!((1.7..=2.3).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn same_seed_same_figures_other_seed_other_figures() {
        let inputs = rounds(30);
        let run = |inputs: &ModelInputs| {
            (
                propagate(inputs, 300, EventKind::Revocation, Mode::Wan),
                heal(inputs, 60, Mode::Wan),
            )
        };
        assert_eq!(run(&inputs), run(&inputs));
        assert_ne!(
            run(&inputs),
            run(&ModelInputs {
                seed: 1,
                ..inputs.clone()
            })
        );
    }

    #[test]
    fn heal_waits_for_connection_handshake_and_reply() {
        let inputs = rounds(20);
        let f = heal(&inputs, 60, Mode::Wan);
        // 1.5 RTT to connect, the handshake, 1 RTT for the anti-entropy reply.
        let floor = 2.5 * inputs.rtt_min_ms + inputs.handshake_us / 1e3;
        assert!(f.p50_99pct_ms >= floor, "{f:?}");
        assert!(
            f.p50_99pct_ms <= f.max_last_ms && f.p99_last_ms <= f.max_last_ms,
            "{f:?}"
        );
        assert!(
            f.messages_per_gateway >= 2.0 && f.bytes_per_gateway > 0.0,
            "{f:?}"
        );
    }

    /// Two gateways a side, RTT 100 ms: connected at 150 ms; each B's two handshakes queue on
    /// its one core (3 ms each), so B's first ends at 153 ms and the other at 156 ms; the op
    /// comes one RTT later, before B's own forward (one way) could.
    #[test]
    fn heal_of_two_by_two_follows_the_timeline_exactly() {
        let inputs = ModelInputs {
            rtt_min_ms: 100.0,
            rtt_max_ms: 100.0,
            ..instant()
        };
        let f = heal(&inputs, 4, Mode::Wan);
        assert_eq!((f.p50_99pct_ms, f.max_last_ms), (256.0, 256.0), "{f:?}");
        // 4 pairs × 4 handshake messages; 4 replies (every handshake ends before either B
        // holds the op); each B forwards it to the other, its mesh.
        assert_eq!(
            f.messages_per_gateway,
            (4.0 * 4.0 + 4.0 + 2.0) / 4.0,
            "{f:?}"
        );
    }

    #[test]
    fn connections_and_mesh_are_symmetric_distinct_and_within_bounds() {
        let (n, k) = (600, 256);
        let mut field = Field::default();
        field.connect(&mut Rng(7), n, k);
        let mut total = 0;
        graft(
            &field.peers,
            &mut field.mesh,
            &mut Rng(3),
            &ModelInputs::default(),
        );
        for (a, peers) in field.peers.iter().enumerate() {
            let mesh = &field.mesh[a];
            assert!((6..=12).contains(&mesh.len()), "mesh of {}", mesh.len());
            assert!(
                mesh.iter()
                    .all(|&b| field.mesh[b as usize].contains(&(a as u32)))
            );
            assert!(peers.len() <= k);
            let mut sorted = peers.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), peers.len(), "a peer twice");
            for &b in peers {
                assert_ne!(b as usize, a);
                assert!(field.peers[b as usize].contains(&(a as u32)));
            }
            total += peers.len();
        }
        assert!(
            total as f64 >= 0.99 * (n * k) as f64,
            "mean degree {}",
            total / n
        );
    }

    #[test]
    fn report_echoes_inputs_and_leaves_the_goal_open_without_1000() {
        let inputs = rounds(3);
        let report = report(&inputs, &[40], &[10]);
        assert_eq!(report["inputs"]["handshake_us"], 3_000.0);
        assert!(report["goal_revocation_99pct_1000_within_1s"].is_null());
        assert_eq!(report["wan"][0]["revocation"]["rounds"], 3);
        assert_eq!(report["loopback"][0]["shared_cores"], 2);
    }
}
