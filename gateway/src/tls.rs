//! The local admin PKI: a CA made at `init`, the API's server certificate, and the admin
//! client certificate that `tfcctl` presents (mutual TLS). All made with rcgen; keys are 0600.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::roles::Role;
use crate::secret_file::create_private;

/// Validity of the certificates made at init, in days.
const VALIDITY_DAYS: i64 = 825;

/// The files of the admin PKI, relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The admin CA certificate.
    pub ca_cert: PathBuf,
    /// The admin CA key (signs further admin client certificates).
    pub ca_key: PathBuf,
    /// The API server certificate.
    pub server_cert: PathBuf,
    /// The API server key.
    pub server_key: PathBuf,
    /// The admin client certificate for `tfcctl`.
    pub client_cert: PathBuf,
    /// The admin client key.
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// The standard layout under `dir` (`<dir>/tls/…`).
    pub fn under(dir: &Path) -> Self {
        let tls = dir.join("tls");
        Self {
            ca_cert: tls.join("admin-ca.pem"),
            ca_key: tls.join("admin-ca-key.pem"),
            server_cert: tls.join("server.pem"),
            server_key: tls.join("server-key.pem"),
            client_cert: tls.join("admin-client.pem"),
            client_key: tls.join("admin-client-key.pem"),
        }
    }

    fn all(&self) -> [&PathBuf; 6] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
    }
}

/// Making the admin PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Some files exist and others do not: mixing two PKIs would lock the admin out.
    #[error(
        "the TLS files in {dir} are incomplete ({missing} missing); move the tls directory aside and run init again"
    )]
    Partial {
        /// The directory.
        dir: PathBuf,
        /// How many are missing.
        missing: usize,
    },
}

/// Whether `init` made the files or found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// Made now.
    Created,
    /// Already there, left untouched.
    Kept,
}

/// Makes the admin CA, the server certificate (for `localhost` and `127.0.0.1`) and an admin
/// client certificate, unless all already exist.
pub fn provision(files: &TlsFiles, organisation: &str) -> Result<Provisioned, TlsError> {
    let present = files.all().iter().filter(|path| path.exists()).count();
    if present == files.all().len() {
        return Ok(Provisioned::Kept);
    }
    let dir = files.ca_cert.parent().unwrap_or(Path::new(".")).to_owned();
    if present > 0 {
        return Err(TlsError::Partial {
            dir,
            missing: files.all().len() - present,
        });
    }
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(organisation)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate()?;
    let server_cert = leaf_params(
        organisation,
        "TFC gateway API",
        ExtendedKeyUsagePurpose::ServerAuth,
    )?
    .signed_by(&server_key, &ca)?;
    let client_key = KeyPair::generate()?;
    let client_cert =
        operator_params(organisation, Role::Admin, FIRST_ADMIN)?.signed_by(&client_key, &ca)?;
    let write = |path: &PathBuf, text: &str, private: bool| {
        let result = if private {
            create_private(path, text.as_bytes())
        } else {
            std::fs::write(path, text)
        };
        result.map_err(|source| TlsError::Io {
            path: path.clone(),
            source,
        })
    };
    write(&files.ca_key, &ca_key.serialize_pem(), true)?;
    write(&files.server_key, &server_key.serialize_pem(), true)?;
    write(&files.client_key, &client_key.serialize_pem(), true)?;
    write(&files.ca_cert, &ca_cert.pem(), false)?;
    write(&files.server_cert, &server_cert.pem(), false)?;
    write(&files.client_cert, &client_cert.pem(), false)?;
    Ok(Provisioned::Created)
}

/// The name in the admin certificate that `init` makes.
pub const FIRST_ADMIN: &str = "TFC gateway admin";

/// A new operator's client certificate and key, as PEM.
pub struct OperatorCertificate {
    /// The certificate, signed by the admin CA.
    pub certificate: String,
    /// Its private key (write it 0600).
    pub key: String,
}

/// Issues a client certificate for the operator `name` with `role`, signed by the admin CA
/// in `files` (which `init` made).
pub fn issue_operator(
    files: &TlsFiles,
    role: Role,
    name: &str,
) -> Result<OperatorCertificate, TlsError> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|source| TlsError::Io {
            path: path.clone(),
            source,
        })
    };
    let ca_pem = read(&files.ca_cert)?;
    let organisation = organisation_of(&ca_pem).unwrap_or_default();
    let ca = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&read(&files.ca_key)?)?)?;
    let key = KeyPair::generate()?;
    let certificate = operator_params(&organisation, role, name)?.signed_by(&key, &ca)?;
    Ok(OperatorCertificate {
        certificate: certificate.pem(),
        key: key.serialize_pem(),
    })
}

/// The organisation named in a certificate's subject.
fn organisation_of(pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let certificate = pem.parse_x509().ok()?;
    let organisation = certificate.subject().iter_organization().next()?;
    organisation.as_str().ok().map(str::to_owned)
}

/// A client certificate's parameters: the operator's name and role in its subject.
fn operator_params(
    organisation: &str,
    role: Role,
    operator: &str,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = leaf_params(organisation, operator, ExtendedKeyUsagePurpose::ClientAuth)?;
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.unit());
    Ok(params)
}

fn name(organisation: &str, common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, organisation);
    name.push(DnType::CommonName, common_name);
    name
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

fn ca_params(organisation: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(organisation, "TFC gateway admin CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params);
    Ok(params)
}

fn leaf_params(
    organisation: &str,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params.distinguished_name = name(organisation, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    validity(&mut params);
    Ok(params)
}
