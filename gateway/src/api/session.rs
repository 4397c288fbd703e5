//! Who is calling: the operator a client certificate names, with its role.

use crate::roles::Role;

/// One operator's TLS session: who, by the name and role in the client certificate and
/// its fingerprint.
#[derive(Clone)]
pub(super) struct AdminSession {
    /// Whether the client showed a certificate of the admin CA (TLS checked it).
    pub(super) authenticated: bool,
    /// The operator's role, if the certificate carries one this gateway knows.
    pub(super) role: Option<Role>,
    /// The operator's name (the certificate's common name).
    pub(super) name: String,
    /// How the audit names the operator: name, role and certificate fingerprint.
    pub(super) actor: String,
    /// The connection's requests so far.
    pub(super) counts: std::sync::Arc<RequestCounts>,
}

impl AdminSession {
    pub(super) fn of(tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Self {
        let certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certificates| certificates.first());
        match certificate {
            Some(certificate) => Self::of_certificate(certificate.as_ref()),
            None => Self {
                authenticated: false,
                role: None,
                name: String::new(),
                actor: "admin:unknown".into(),
                counts: Default::default(),
            },
        }
    }

    /// The session of a client whose certificate (DER) TLS has already checked.
    pub(super) fn of_certificate(der: &[u8]) -> Self {
        use sha2::Digest;
        let fingerprint: String = sha2::Sha256::digest(der)
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let (name, role) = subject_of(der);
        let role_text = role.map_or("no-role", Role::as_str);
        Self {
            authenticated: true,
            role,
            actor: format!("operator:{name} ({role_text}, cert {fingerprint})"),
            name,
            counts: Default::default(),
        }
    }
}

/// The operator's name (common name) and role (organisational unit) in a certificate. A
/// certificate with several role units has none: which would it be?
fn subject_of(der: &[u8]) -> (String, Option<Role>) {
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
        return ("unreadable certificate".into(), None);
    };
    let subject = certificate.subject();
    let name = subject
        .iter_common_name()
        .find_map(|name| name.as_str().ok())
        .unwrap_or("unnamed")
        .chars()
        .filter(|character| !character.is_control())
        .take(128)
        .collect();
    let units: Vec<&str> = subject
        .iter_organizational_unit()
        .filter_map(|unit| unit.as_str().ok())
        .filter(|unit| unit.starts_with(crate::roles::ROLE_UNIT_PREFIX))
        .collect();
    let role = match units.as_slice() {
        [unit] => Role::from_unit(unit),
        _ => None,
    };
    (name, role)
}

/// One connection's requests, counted without a lock and summed into the tally when it
/// ends.
#[derive(Debug, Default)]
pub(super) struct RequestCounts {
    pub(super) requests: std::sync::atomic::AtomicU64,
    pub(super) changes: std::sync::atomic::AtomicU64,
}

impl RequestCounts {
    pub(super) fn count(&self, change: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests.fetch_add(1, Relaxed);
        if change {
            self.changes.fetch_add(1, Relaxed);
        }
    }
}
