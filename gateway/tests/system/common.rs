//! What the daemon tests share: a data dir on ephemeral ports, an admin API client, and a
//! `tfc-gateway run` child process.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tfc_gateway::config::GatewayConfig;
use tfc_gateway::init::{CONFIG_FILE, init};

/// How long a daemon may take to start, answer or stop.
pub const WAIT: Duration = Duration::from_secs(20);

/// Initialises a data dir whose gateway listens on an ephemeral loopback port.
pub fn data_dir(dir: &Path) -> std::path::PathBuf {
    init(dir, None).unwrap();
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("/ip4/0.0.0.0/tcp/7400", "/ip4/127.0.0.1/tcp/0")
        .replace("127.0.0.1:7443", "127.0.0.1:0");
    std::fs::write(&path, &text).unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    assert_eq!(
        (config.api.listen.port(), config.network.listen.as_slice()),
        (0, ["/ip4/127.0.0.1/tcp/0".to_owned()].as_slice()),
        "tests use ephemeral ports"
    );
    path
}

/// An HTTPS client for the admin API: trusts the admin CA, presents `identity` if given.
pub fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::blocking::Client {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

/// A `tfc-gateway run` process with its stderr lines on a channel.
pub struct Daemon {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    pub fn start(config: &Path) -> (Self, String) {
        Self::start_under(config, &[])
    }

    /// Starts the daemon with no file allowed to grow past `kib` KiB: a disk that fills up
    /// (writes fail with EFBIG, as they would with ENOSPC) without a mount.
    pub fn start_with_disk_limit(config: &Path, kib: u64) -> (Self, String) {
        // SIGXFSZ would kill the process; ignored, the write fails with an error instead.
        let script = "trap '' XFSZ; ulimit -f \"$1\"; shift; exec \"$@\"";
        let kib = kib.to_string();
        Self::start_under(config, &["bash", "-c", script, "disk-limit", &kib])
    }

    /// Starts the daemon with its clock `offset` off (libfaketime's syntax: `+5m`, `-5m`).
    /// The library is preloaded directly: the `faketime` wrapper forks, so killing it would
    /// leave the daemon running.
    pub fn start_with_clock_offset(config: &Path, offset: &str) -> (Self, String) {
        let library = glob_faketime()
            .unwrap_or_else(|| panic!("libfaketime is missing: `bash tests/setup` installs it"));
        let preload = format!("LD_PRELOAD={}", library.display());
        let offset = format!("FAKETIME={offset}");
        Self::start_under(config, &["env", &preload, &offset])
    }

    /// Starts `tfc-gateway run --config CONFIG` through `wrapper` (a command that execs its
    /// remaining arguments), and waits until it serves; returns it and its API address.
    pub fn start_under(config: &Path, wrapper: &[&str]) -> (Self, String) {
        let binary = env!("CARGO_BIN_EXE_tfc-gateway");
        let mut command = match wrapper.split_first() {
            Some((program, arguments)) => {
                let mut command = Command::new(program);
                command.args(arguments).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .args(["--log-format", "json"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let daemon = Self { child, lines };
        let started = loop {
            let line = daemon
                .lines
                .recv_timeout(WAIT)
                .expect("the daemon did not start");
            if line.contains("gateway started") {
                break line;
            }
        };
        let log: serde_json::Value = serde_json::from_str(&started).unwrap();
        let api = log["fields"]["api"].as_str().unwrap().to_owned();
        (daemon, api)
    }

    /// The first log line from now on that `matches`; panics after [`WAIT`].
    pub fn wait_line(&self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        let mut last = std::collections::VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(line) => {
                    last.push_back(line);
                    if last.len() > 20 {
                        last.pop_front();
                    }
                }
                Err(error) => panic!(
                    "the daemon never logged the awaited line ({error}); its last lines:\n{}",
                    Vec::from(last).join("\n")
                ),
            }
        }
    }

    pub fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The process is gone when its stderr closes: the reader thread then drops the
        // sending end of `lines`.
        let deadline = std::time::Instant::now() + WAIT;
        let mut last = std::collections::VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    last.push_back(line);
                    if last.len() > 20 {
                        last.pop_front();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the daemon did not exit within {WAIT:?} of {signal}; its last lines:\n{}",
                    Vec::from(last).join("\n")
                ),
            }
        }
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    /// A test that fails half-way leaves no daemon behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Debian puts libfaketime, for any architecture.
fn glob_faketime() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let library = entry.path().join("faketime/libfaketime.so.1");
            library.is_file().then_some(library)
        })
}
