//! `tfc-bench load`: many concurrent admin clients against one gateway's local API, each on
//! its own mutual-TLS connection, alternating `GET /v1/status` and `GET /v1/fields` for a
//! fixed time. Beside it: the same clients against a trivial endpoint in this process that
//! serves the same bytes over the same TLS (the gateway's certificates, client certificates
//! required) and the same hyper server, so the difference is the gateway's own work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tfc_gateway::tls::TlsFiles;
use tfc_testkit::Authorities;

use crate::Series;
use crate::resources::Meter;

const PATHS: [&str; 2] = ["/v1/status", "/v1/fields"];
/// Error messages kept for the report (the count covers them all).
const KEPT_ERRORS: usize = 5;

/// What one client load produced.
pub(crate) struct Outcome {
    /// Each client's first request: TCP, TLS with client certificate, one request.
    pub(crate) first: Series,
    /// The requests after every client connected.
    pub(crate) steady: Series,
    pub(crate) errors: usize,
    pub(crate) error_samples: Vec<String>,
}

impl Outcome {
    fn json(&self) -> Value {
        json!({
            "connect_and_first_request": self.first.figures(),
            "requests": self.steady.figures(),
            "errors": self.errors,
            "error_samples": self.error_samples,
        })
    }
}

/// The figures of one run.
pub(crate) struct Figures {
    pub(crate) gateway: Outcome,
    pub(crate) baseline: Outcome,
    pub(crate) meter: Meter,
}

impl Figures {
    /// The JSON document of the run.
    pub(crate) fn json(&self, clients: u32, seconds: u64) -> Value {
        json!({
            "scenario": "load",
            "clients": clients,
            "seconds": seconds,
            "paths": PATHS,
            "gateway_api": self.gateway.json(),
            "baseline_trivial_https_endpoint": self.baseline.json(),
            "ratio_p50": self.gateway.steady.percentile(0.5) / self.baseline.steady.percentile(0.5),
            "target_errors": 0,
            "resources": self.meter.figures(),
            "resources_note": "the clients run in the same process: loaded RSS and CPU include them",
        })
    }

    /// The human report.
    pub(crate) fn print(&self, clients: u32, seconds: u64) {
        println!(
            "load scenario: {clients} mutual-TLS clients, one connection each, {seconds} s, GET {}",
            PATHS.join(" and ")
        );
        crate::print_table(&[
            (
                "gateway API: TLS connect + first request",
                &self.gateway.first,
            ),
            ("gateway API: requests", &self.gateway.steady),
            (
                "baseline: trivial HTTPS, connect + first",
                &self.baseline.first,
            ),
            ("baseline: trivial HTTPS, requests", &self.baseline.steady),
        ]);
        println!(
            "errors: {} at the gateway (target 0), {} at the baseline{}",
            self.gateway.errors,
            self.baseline.errors,
            self.gateway
                .error_samples
                .first()
                .map(|error| format!("; first: {error}"))
                .unwrap_or_default()
        );
        self.meter.print();
        println!("  (the clients run in this process: loaded RSS and CPU include them)");
    }
}

/// A client configuration carrying the admin client certificate, trusting the admin CA.
fn client_tls(files: &TlsFiles) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(&files.ca_cert)? {
        roots.add(certificate?)?;
    }
    let chain = CertificateDer::pem_file_iter(&files.client_cert)?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.client_key)?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)?)
}

/// One HTTPS client with its own connection pool: one connection per client.
pub(crate) fn client(tls: &rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// An mTLS client for the admin API of the gateway whose data directory is `dir`.
pub(crate) fn admin_client(dir: &std::path::Path) -> anyhow::Result<reqwest::Client> {
    client(&client_tls(&TlsFiles::under(dir))?)
}

/// `GET url`, its body read in full; an error unless the status is a success.
pub(crate) async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}");
    Ok(body.len())
}

/// Runs `clients` concurrent clients against `address` for `seconds`.
async fn drive(
    address: SocketAddr,
    tls: &rustls::ClientConfig,
    clients: u32,
    seconds: u64,
) -> anyhow::Result<Outcome> {
    let base = format!("https://localhost:{}", address.port());
    let ready = Arc::new(tokio::sync::Barrier::new(clients as usize + 1));
    let (go, _) = tokio::sync::broadcast::channel::<Instant>(1);
    let mut tasks = Vec::with_capacity(clients as usize);
    for index in 0..clients as usize {
        let client = client(tls)?;
        let ready = Arc::clone(&ready);
        let mut start = go.subscribe();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut samples = Vec::new();
            let begin = Instant::now();
            let first = get(&client, &format!("{base}{}", PATHS[index % 2])).await;
            let first = match first {
                Ok(_) => Some(begin.elapsed()),
                Err(error) => {
                    errors.push(format!("{error:#}"));
                    None
                }
            };
            ready.wait().await;
            let Ok(deadline) = start.recv().await else {
                return (first, samples, errors);
            };
            let mut turn = index;
            while Instant::now() < deadline {
                turn += 1;
                let begin = Instant::now();
                match get(&client, &format!("{base}{}", PATHS[turn % 2])).await {
                    Ok(_) => samples.push(begin.elapsed()),
                    Err(error) => errors.push(format!("{error:#}")),
                }
            }
            (first, samples, errors)
        }));
    }
    let connecting = Instant::now();
    ready.wait().await;
    let connected = connecting.elapsed();
    let started = Instant::now();
    let _ = go.send(started + Duration::from_secs(seconds));
    let mut first = Vec::new();
    let mut steady = Vec::new();
    let mut errors = 0;
    let mut error_samples = Vec::new();
    for task in tasks {
        let (one, samples, failures) = task.await.context("a client task failed")?;
        first.extend(one);
        steady.extend(samples);
        errors += failures.len();
        for failure in failures {
            if error_samples.len() < KEPT_ERRORS && !error_samples.contains(&failure) {
                error_samples.push(failure);
            }
        }
    }
    Ok(Outcome {
        first: Series {
            samples: first,
            wall: connected,
        },
        steady: Series {
            samples: steady,
            wall: started.elapsed(),
        },
        errors,
        error_samples,
    })
}

/// A trivial HTTPS endpoint with the gateway's TLS (its server certificate, client
/// certificates from its admin CA required) and hyper server, serving fixed bodies.
async fn trivial_endpoint(
    files: &TlsFiles,
    bodies: Vec<(&'static str, String)>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;

    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(&files.ca_cert)? {
        roots.add(certificate?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            CertificateDer::pem_file_iter(&files.server_cert)?.collect::<Result<_, _>>()?,
            PrivateKeyDer::from_pem_file(&files.server_key)?,
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut router = axum::Router::new();
    for (path, body) in bodies {
        router = router.route(
            path,
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let serving = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                }
            });
        }
    });
    Ok((address, serving))
}

/// Runs the scenario: `clients` clients for `seconds` against one gateway, then the baseline.
pub(crate) async fn run(clients: u32, seconds: u64) -> anyhow::Result<Figures> {
    let mut meter = Meter::start(1)?;
    let authorities = Authorities::new();
    let node = tfc_testkit::start_sole_admin(&authorities, crate::governed::quiet).await;
    meter.idle().await?;
    let files = TlsFiles::under(node.dir.path());
    let tls = client_tls(&files)?;
    let address = node.gateway.api_address();
    // The bodies the gateway serves now, for the baseline to serve the same bytes.
    let probe = client(&tls)?;
    let mut bodies = Vec::new();
    for path in PATHS {
        let url = format!("https://localhost:{}{path}", address.port());
        let body = probe.get(&url).send().await?.text().await?;
        bodies.push((path, body));
    }
    drop(probe);
    meter.begin()?;
    let gateway = drive(address, &tls, clients, seconds).await?;
    meter.loaded()?;
    node.gateway.shutdown().await?;
    let (address, serving) = trivial_endpoint(&files, bodies).await?;
    let baseline = drive(address, &tls, clients, seconds).await?;
    serving.abort();
    Ok(Figures {
        gateway,
        baseline,
        meter,
    })
}
