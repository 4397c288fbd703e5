//! A delayed network for real gateway processes: each gateway gets a network namespace with a
//! TUN device, and this process relays every IPv4 packet between the devices after a fixed
//! one-way delay. It stands in for `tc netem`, which this machine's kernel lacks: the
//! gateways' own kernels still run TCP (handshakes, congestion windows, retransmits) over
//! the delayed path.
//!
//! Gateway `i` has the address `10.77.0.(i + 1)`. Gateway 0 lives in this process's own
//! namespace (the bench drives it in-process); every other one in the namespace `tfcb-<i>`.
//! Packets between two gateways wait `rtt / 2`; nothing else is delayed, reordered or lost.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The largest field the address plan holds (one /24).
pub(crate) const MAX_GATEWAYS: usize = 250;

/// The name of the TUN device in every namespace.
const DEVICE: &str = "tfcb";

/// How often a blocked relay thread looks at the stop flag.
const STOP_POLL_MS: i32 = 100;

/// `TUNSETIFF` from `<linux/if_tun.h>`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Gateway `index`'s address.
pub(crate) fn address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, (index + 1) as u8)
}

/// The namespace of gateway `index` (≥ 1; gateway 0 is in this process's own).
pub(crate) fn namespace(index: usize) -> String {
    format!("tfcb-{index}")
}

/// Which gateway an IPv4 packet is addressed to, if any of ours.
fn destination(packet: &[u8], gateways: usize) -> Option<usize> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[16..19] != [10, 77, 0] {
        return None;
    }
    let index = usize::from(packet[19]).checked_sub(1)?;
    (index < gateways).then_some(index)
}

/// A packet due at a time; `sequence` keeps packets due together in arrival order.
struct Due {
    at: Instant,
    sequence: u64,
    to: usize,
    packet: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

/// The namespaces, their devices and the relay threads; dropping it stops the threads and
/// deletes the namespaces (the devices go with the last descriptor).
pub(crate) struct DelayNet {
    gateways: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayNet {
    /// Creates `gateways` addresses (one namespace per gateway but the first) joined by a
    /// relay that delays each packet by `rtt / 2`. Needs root and `/dev/net/tun`.
    pub(crate) fn create(gateways: usize, rtt: Duration) -> anyhow::Result<Self> {
        if !(2..=MAX_GATEWAYS).contains(&gateways) {
            bail!("a delayed network holds 2 to {MAX_GATEWAYS} gateways, not {gateways}");
        }
        for index in 1..gateways {
            // A namespace left by an interrupted run would make `add` fail.
            let _ = Command::new("ip")
                .args(["netns", "del", &namespace(index)])
                .output();
            ip(&["netns", "add", &namespace(index)])?;
        }
        let mut net = Self {
            gateways,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let mut devices = Vec::with_capacity(gateways);
        for index in 0..gateways {
            let device = open_device(index)?;
            configure_device(index)?;
            devices.push(Arc::new(device));
        }
        net.spawn_relay(devices, rtt / 2)?;
        Ok(net)
    }

    /// One thread per device reads its packets; one writes each packet to its destination
    /// once it is due.
    fn spawn_relay(&mut self, devices: Vec<Arc<File>>, one_way: Duration) -> anyhow::Result<()> {
        let (sender, due) = mpsc::channel::<(Instant, usize, Vec<u8>)>();
        for device in &devices {
            let (device, sender, stop) = (device.clone(), sender.clone(), self.stop.clone());
            let gateways = self.gateways;
            self.threads.push(
                std::thread::Builder::new()
                    .name("delaynet-read".into())
                    .spawn(move || read_packets(&device, gateways, one_way, &sender, &stop))?,
            );
        }
        drop(sender);
        self.threads.push(
            std::thread::Builder::new()
                .name("delaynet-write".into())
                .spawn(move || write_when_due(&devices, &due))?,
        );
        Ok(())
    }
}

impl Drop for DelayNet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        for index in 1..self.gateways {
            let _ = Command::new("ip")
                .args(["netns", "del", &namespace(index)])
                .output();
        }
    }
}

/// Runs `ip` with `args`; fails with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Opens a TUN device for gateway `index`, inside its namespace: the device is created in the
/// namespace of the thread that opens it, so a short-lived thread enters the namespace first.
fn open_device(index: usize) -> anyhow::Result<File> {
    let opener = std::thread::spawn(move || -> anyhow::Result<File> {
        if index > 0 {
            let path = format!("/run/netns/{}", namespace(index));
            let namespace = File::open(&path).with_context(|| format!("cannot open {path}"))?;
            // SAFETY: setns on a descriptor we own; it changes only this thread's namespace.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {path}: {}", std::io::Error::last_os_error());
            }
        }
        let device = File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context("cannot open /dev/net/tun")?;
        let mut request = [0u8; 40];
        request[..DEVICE.len()].copy_from_slice(DEVICE.as_bytes());
        let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as i16;
        request[16..18].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a 40-byte `struct ifreq`, which `request` is.
        if unsafe { libc::ioctl(device.as_raw_fd(), TUNSETIFF, request.as_mut_ptr()) } != 0 {
            bail!("TUNSETIFF: {}", std::io::Error::last_os_error());
        }
        Ok(device)
    });
    opener
        .join()
        .map_err(|_| anyhow::anyhow!("the device opener panicked"))?
}

/// Gives gateway `index`'s device its address and a route to every other gateway through it.
fn configure_device(index: usize) -> anyhow::Result<()> {
    let own = address(index).to_string();
    let mut prefix: Vec<String> = Vec::new();
    if index > 0 {
        prefix.extend(["-n".into(), namespace(index)]);
    }
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = prefix.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        ip(&all)
    };
    run(&["addr", "add", &format!("{own}/32"), "dev", DEVICE])?;
    run(&["link", "set", DEVICE, "up"])?;
    if index > 0 {
        run(&["link", "set", "lo", "up"])?;
    }
    run(&["route", "add", "10.77.0.0/24", "dev", DEVICE, "src", &own])
}

/// Reads packets from `device` and hands each to the writer with its due time, until `stop`.
fn read_packets(
    device: &File,
    gateways: usize,
    one_way: Duration,
    due: &mpsc::Sender<(Instant, usize, Vec<u8>)>,
    stop: &AtomicBool,
) {
    let mut buffer = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let mut poll = libc::pollfd {
            fd: device.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, STOP_POLL_MS) } <= 0 {
            continue;
        }
        let Ok(length) = (&*device).read(&mut buffer) else {
            return;
        };
        let packet = &buffer[..length];
        if let Some(to) = destination(packet, gateways)
            && due
                .send((Instant::now() + one_way, to, packet.to_vec()))
                .is_err()
        {
            return;
        }
    }
}

/// Writes each packet to its destination's device when it is due; returns once every reader
/// has stopped and nothing is left.
fn write_when_due(devices: &[Arc<File>], incoming: &mpsc::Receiver<(Instant, usize, Vec<u8>)>) {
    let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut sequence = 0u64;
    loop {
        let now = Instant::now();
        while let Some(Reverse(next)) = queue.peek()
            && next.at <= now
        {
            let Some(Reverse(Due { to, packet, .. })) = queue.pop() else {
                break;
            };
            // A full device queue drops the packet, as a congested link would.
            let _ = (&*devices[to]).write(&packet);
        }
        let received = match queue.peek() {
            Some(Reverse(next)) => {
                incoming.recv_timeout(next.at.saturating_duration_since(Instant::now()))
            }
            None => incoming
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok((at, to, packet)) => {
                sequence += 1;
                queue.push(Reverse(Due {
                    at,
                    sequence,
                    to,
                    packet,
                }));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) if queue.is_empty() => return,
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_to(last: u8) -> Vec<u8> {
        let mut packet = vec![0u8; 40];
        packet[0] = 0x45;
        packet[16..20].copy_from_slice(&[10, 77, 0, last]);
        packet
    }

    #[test]
    fn packets_go_to_the_gateway_of_their_destination_address() {
        assert_eq!(destination(&ipv4_to(1), 20), Some(0));
        assert_eq!(destination(&ipv4_to(20), 20), Some(19));
        assert_eq!(address(19).octets(), [10, 77, 0, 20]);
    }

    #[test]
    fn packets_for_no_gateway_of_ours_are_dropped() {
        assert_eq!(destination(&ipv4_to(21), 20), None, "past the field");
        assert_eq!(destination(&ipv4_to(0), 20), None, "the network address");
        let mut elsewhere = ipv4_to(3);
        elsewhere[16] = 192;
        assert_eq!(destination(&elsewhere, 20), None, "another network");
        let mut ipv6 = ipv4_to(3);
        ipv6[0] = 0x60;
        assert_eq!(destination(&ipv6, 20), None, "not IPv4");
        assert_eq!(destination(&ipv4_to(3)[..19], 20), None, "truncated");
    }

    #[test]
    fn packets_due_together_leave_in_arrival_order() {
        let at = Instant::now();
        let due = |sequence| {
            Reverse(Due {
                at,
                sequence,
                to: 0,
                packet: vec![],
            })
        };
        let mut queue = BinaryHeap::from([due(3), due(1), due(2)]);
        let order: Vec<u64> =
            std::iter::from_fn(|| queue.pop().map(|Reverse(d)| d.sequence)).collect();
        assert_eq!(order, [1, 2, 3]);
    }
}
