//! The subset of the STIX 2.1 patterning language that countermeasures can act on.
//!
//! One observation of comparisons joined by `AND`, all on one object type:
//!
//! - `[ipv4-addr:value = '198.51.100.7']`, `[ipv6-addr:value = '2001:db8::/32']` (CIDR too);
//! - `[domain-name:value = 'evil.example']` (the domain and its subdomains);
//! - `[file:hashes.'SHA-256' = '<64 hex>']`;
//! - `[software:name = 'openssl' AND software:version >= '3.0.0' AND software:version < '3.0.7']`
//!   or `[software:cpe = 'cpe:2.3:…']`;
//! - `[x-tfc-member:did = 'did:key:…']`.
//!
//! Anything else (`OR`, several observations, qualifiers, other object types) is refused:
//! a countermeasure must never act on a pattern it only half understands.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;

/// The widest IPv4 network an indicator may name (a /16: 65,536 addresses).
pub const MIN_IPV4_PREFIX: u8 = 16;
/// The widest IPv6 network an indicator may name (a /32: one provider's allocation).
pub const MIN_IPV6_PREFIX: u8 = 32;
use serde::{Deserialize, Serialize};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 2048;

/// What an indicator's pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Pattern {
    /// An IPv4 or IPv6 address or network.
    Address {
        /// The network (a single address is a /32 or /128).
        net: IpNet,
    },
    /// A domain name and its subdomains (lower case, no trailing dot).
    Domain {
        /// The domain.
        name: String,
    },
    /// A file by its SHA-256 (lower-case hex).
    FileSha256 {
        /// The hash.
        sha256: String,
    },
    /// Software by name and an optional version range, or by CPE 2.3 name.
    Software(SoftwareMatch),
    /// A field member.
    Member {
        /// The member's DID.
        did: String,
    },
}

/// Which software components an indicator names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareMatch {
    /// The component name (compared case-insensitively).
    pub name: Option<String>,
    /// Version bounds, all of which must hold.
    pub versions: Vec<(Comparator, String)>,
    /// A CPE 2.3 name; `*` components match anything.
    pub cpe: Option<String>,
}

/// A comparison operator on versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

impl Comparator {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparator::Eq => ordering == Ordering::Equal,
            Comparator::Lt => ordering == Ordering::Less,
            Comparator::Le => ordering != Ordering::Greater,
            Comparator::Gt => ordering == Ordering::Greater,
            Comparator::Ge => ordering != Ordering::Less,
        }
    }
}

/// A software component as an inventory credential lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Component<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its CPE 2.3 name, if any.
    pub cpe: Option<&'a str>,
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!("pattern longer than {MAX_PATTERN_LEN} bytes"));
        }
        let inner = text
            .trim()
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or("a pattern is one observation in brackets: [type:property = 'value']")?;
        let comparisons = split_and(inner)?
            .into_iter()
            .map(Comparison::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let object = comparisons[0].object.as_str();
        if comparisons.iter().any(|c| c.object != object) {
            return Err("all comparisons must be on one object type".into());
        }
        match object {
            "ipv4-addr" | "ipv6-addr" => Self::address(object, &comparisons),
            "domain-name" => Self::domain(&comparisons),
            "file" => Self::file(&comparisons),
            "software" => Self::software(&comparisons),
            "x-tfc-member" => Self::member(&comparisons),
            other => Err(format!("object type {other} is not supported")),
        }
    }

    fn single<'c>(comparisons: &'c [Comparison], path: &str) -> Result<&'c str, String> {
        match comparisons {
            [only] if only.path == path && only.op == Comparator::Eq => Ok(&only.value),
            _ => Err(format!("expected exactly one comparison: {path} = '…'")),
        }
    }

    fn address(object: &str, comparisons: &[Comparison]) -> Result<Self, String> {
        let value = Self::single(comparisons, "value")?;
        let net = match value.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => IpNet::from(
                value
                    .parse::<IpAddr>()
                    .map_err(|_| format!("{value:?} is not an address or CIDR"))?,
            ),
        };
        let family_matches = matches!(
            (object, net),
            ("ipv4-addr", IpNet::V4(_)) | ("ipv6-addr", IpNet::V6(_))
        );
        if !family_matches {
            return Err(format!("{value} is not an {object}"));
        }
        let widest = match net {
            IpNet::V4(_) => MIN_IPV4_PREFIX,
            IpNet::V6(_) => MIN_IPV6_PREFIX,
        };
        if net.prefix_len() < widest {
            return Err(format!(
                "{value} is wider than /{widest}: one indicator may not cut a gateway off from whole networks"
            ));
        }
        Ok(Pattern::Address { net })
    }

    fn domain(comparisons: &[Comparison]) -> Result<Self, String> {
        let name = Self::single(comparisons, "value")?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.len() > 253 || !name.contains('.') || !name.split('.').all(valid_label) {
            return Err(format!("{name:?} is not a domain name"));
        }
        Ok(Pattern::Domain { name })
    }

    fn file(comparisons: &[Comparison]) -> Result<Self, String> {
        let sha256 = Self::single(comparisons, "hashes.'SHA-256'")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a SHA-256 is 64 hex digits".into());
        }
        Ok(Pattern::FileSha256 { sha256 })
    }

    fn software(comparisons: &[Comparison]) -> Result<Self, String> {
        let mut software = SoftwareMatch {
            name: None,
            versions: Vec::new(),
            cpe: None,
        };
        for comparison in comparisons {
            let value = comparison.value.clone();
            match (comparison.path.as_str(), comparison.op) {
                ("name", Comparator::Eq) if software.name.is_none() => {
                    software.name = Some(value.to_ascii_lowercase());
                }
                ("version", op) => software.versions.push((op, value)),
                ("cpe", Comparator::Eq) if software.cpe.is_none() => {
                    if !value.starts_with("cpe:2.3:") || value.split(':').count() != 13 {
                        return Err(format!("{value:?} is not a CPE 2.3 name"));
                    }
                    software.cpe = Some(value.to_ascii_lowercase());
                }
                (path, _) => {
                    return Err(format!(
                        "software:{path} is not supported here (name, version or cpe)"
                    ));
                }
            }
        }
        if software.name.is_none() && software.cpe.is_none() {
            return Err("a software pattern names the software (name or cpe)".into());
        }
        Ok(Pattern::Software(software))
    }

    fn member(comparisons: &[Comparison]) -> Result<Self, String> {
        let did = Self::single(comparisons, "did")?;
        crate::identity::PublicKey::from_did(did)
            .map_err(|error| format!("{did:?} is not a member DID: {error}"))?;
        Ok(Pattern::Member {
            did: did.to_owned(),
        })
    }

    /// Whether this pattern names `address`.
    pub fn matches_address(&self, address: IpAddr) -> bool {
        matches!(self, Pattern::Address { net } if net.contains(&address))
    }

    /// Whether this pattern names `host` (a domain and its subdomains).
    pub fn matches_domain(&self, host: &str) -> bool {
        let Pattern::Domain { name } = self else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host == *name
            || host
                .strip_suffix(name.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'))
    }
}

impl SoftwareMatch {
    /// Whether `component` is one this pattern names.
    pub fn matches(&self, component: &Component<'_>) -> bool {
        if let Some(cpe) = &self.cpe {
            let Some(theirs) = component.cpe else {
                return false;
            };
            if !cpe_matches(cpe, theirs) {
                return false;
            }
        }
        if let Some(name) = &self.name
            && !component.name.eq_ignore_ascii_case(name)
        {
            return false;
        }
        self.versions
            .iter()
            .all(|(op, bound)| op.holds(compare_versions(component.version, bound)))
    }
}

/// Compares CPE 2.3 names component by component; `*` in the pattern matches anything.
fn cpe_matches(pattern: &str, candidate: &str) -> bool {
    let candidate = candidate.to_ascii_lowercase();
    let theirs: Vec<&str> = candidate.split(':').collect();
    let ours: Vec<&str> = pattern.split(':').collect();
    ours.len() == theirs.len()
        && ours
            .iter()
            .zip(&theirs)
            .all(|(ours, theirs)| *ours == "*" || ours == theirs)
}

/// Orders dotted versions: numeric parts numerically, others as text; `3.0` < `3.0.1`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<String> {
        v.split(['.', '-', '+'])
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    for (x, y) in a.iter().zip(&b) {
        let ordering = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.len().cmp(&b.len())
}

/// One `object:path op 'value'` comparison.
struct Comparison {
    object: String,
    path: String,
    op: Comparator,
    value: String,
}

impl Comparison {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (left, rest) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{text:?} is not a comparison"))?;
        let rest = rest.trim_start();
        let (op, value) = [
            ("<=", Comparator::Le),
            (">=", Comparator::Ge),
            ("=", Comparator::Eq),
            ("<", Comparator::Lt),
            (">", Comparator::Gt),
        ]
        .into_iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|value| (op, value)))
        .ok_or_else(|| format!("{text:?}: only =, <, <=, > and >= are supported"))?;
        let (object, path) = left
            .split_once(':')
            .ok_or_else(|| format!("{left:?} is not an object path"))?;
        Ok(Self {
            object: object.to_owned(),
            path: path.to_owned(),
            op,
            value: string_literal(value.trim())?,
        })
    }
}

/// Splits on `AND` outside quotes; refuses `OR` and anything that nests observations.
fn split_and(inner: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'\'' => quoted = !quoted,
            b'[' | b']' | b'(' | b')' if !quoted => {
                return Err("nested observations are not supported".into());
            }
            _ if !quoted && bytes[i..].starts_with(b" OR ") => {
                return Err("OR is not supported: publish one indicator per alternative".into());
            }
            _ if !quoted && bytes[i..].starts_with(b" AND ") => {
                parts.push(&inner[start..i]);
                start = i + 5;
                i += 4;
            }
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return Err("unterminated string".into());
    }
    parts.push(&inner[start..]);
    Ok(parts)
}

/// Decodes a single-quoted STIX string literal (`\'` and `\\` escapes).
fn string_literal(text: &str) -> Result<String, String> {
    let body = text
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .ok_or_else(|| format!("{text:?} is not a quoted string"))?;
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\'' | '\\')) => value.push(escaped),
                _ => return Err("only \\' and \\\\ escapes are allowed".into()),
            },
            '\'' => return Err("unescaped quote inside a string".into()),
            c => value.push(c),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component<'a>(name: &'a str, version: &'a str) -> Component<'a> {
        Component {
            name,
            version,
            cpe: None,
        }
    }

    #[test]
    fn addresses_and_networks_match_what_they_contain() {
        let net = Pattern::parse("[ipv4-addr:value = '198.51.100.0/24']").unwrap();
        assert!(net.matches_address("198.51.100.77".parse().unwrap()));
        assert!(!net.matches_address("198.51.101.1".parse().unwrap()));
        let one = Pattern::parse("[ipv6-addr:value = '2001:db8::1']").unwrap();
        assert!(one.matches_address("2001:db8::1".parse().unwrap()));
        assert!(!one.matches_address("2001:db8::2".parse().unwrap()));
        assert!(Pattern::parse("[ipv4-addr:value = '2001:db8::1']").is_err());
        assert!(Pattern::parse("[ipv4-addr:value = '300.1.1.1']").is_err());
    }

    #[test]
    fn networks_wider_than_the_limit_are_refused() {
        assert!(Pattern::parse("[ipv4-addr:value = '10.1.0.0/16']").is_ok());
        for too_wide in [
            "[ipv4-addr:value = '0.0.0.0/0']",
            "[ipv4-addr:value = '10.0.0.0/8']",
            "[ipv6-addr:value = '::/0']",
            "[ipv6-addr:value = '2001::/16']",
        ] {
            let error = Pattern::parse(too_wide).unwrap_err();
            assert!(error.contains("wider than"), "{too_wide}: {error}");
        }
    }

    #[test]
    fn a_domain_matches_itself_and_its_subdomains_only() {
        let domain = Pattern::parse("[domain-name:value = 'Evil.Example.']").unwrap();
        assert!(domain.matches_domain("evil.example"));
        assert!(domain.matches_domain("cdn.evil.example"));
        assert!(!domain.matches_domain("notevil.example"));
        assert!(Pattern::parse("[domain-name:value = 'no_dots']").is_err());
    }

    #[test]
    fn software_ranges_compare_versions_numerically() {
        let pattern = Pattern::parse(
            "[software:name = 'OpenSSL' AND software:version >= '3.0.0' AND software:version < '3.0.10']",
        )
        .unwrap();
        let Pattern::Software(software) = pattern else {
            panic!("not software")
        };
        assert!(software.matches(&component("openssl", "3.0.9")));
        assert!(software.matches(&component("openssl", "3.0.0")));
        assert!(!software.matches(&component("openssl", "3.0.10")));
        assert!(!software.matches(&component("openssl", "1.1.1")));
        assert!(!software.matches(&component("libressl", "3.0.5")));
    }

    #[test]
    fn a_cpe_with_wildcards_matches_components_that_carry_one() {
        let Pattern::Software(software) =
            Pattern::parse("[software:cpe = 'cpe:2.3:a:openssl:openssl:3.0.1:*:*:*:*:*:*:*']")
                .unwrap()
        else {
            panic!("not software")
        };
        let mut listed = component("openssl", "3.0.1");
        assert!(!software.matches(&listed), "no cpe in the inventory");
        listed.cpe = Some("cpe:2.3:a:openssl:openssl:3.0.1:*:*:*:*:*:*:*");
        assert!(software.matches(&listed));
        listed.cpe = Some("cpe:2.3:a:openssl:openssl:3.0.2:*:*:*:*:*:*:*");
        assert!(!software.matches(&listed));
    }

    #[test]
    fn hashes_and_members_are_checked() {
        let hash = "AB".repeat(32);
        let parsed = Pattern::parse(&format!("[file:hashes.'SHA-256' = '{hash}']")).unwrap();
        assert_eq!(
            parsed,
            Pattern::FileSha256 {
                sha256: hash.to_ascii_lowercase()
            }
        );
        assert!(Pattern::parse("[file:hashes.'SHA-256' = 'abc']").is_err());
        let key = crate::identity::KeyPair::generate(crate::identity::KeyAlgorithm::Ed25519);
        let member = Pattern::parse(&format!("[x-tfc-member:did = '{}']", key.did())).unwrap();
        assert_eq!(member, Pattern::Member { did: key.did() });
        assert!(Pattern::parse("[x-tfc-member:did = 'did:web:nope']").is_err());
    }

    #[test]
    fn what_is_not_understood_is_refused() {
        for text in [
            "",
            "ipv4-addr:value = '1.2.3.4'",
            "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8']",
            "[ipv4-addr:value = '1.2.3.4'] AND [ipv4-addr:value = '5.6.7.8']",
            "[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS",
            "[url:value = 'http://x.example/']",
            "[ipv4-addr:value = '1.2.3.4' AND domain-name:value = 'x.example']",
            "[ipv4-addr:value MATCHES '1.2.3.4']",
            "[ipv4-addr:value = '1.2.3.4]",
            "[software:version = '1.0']",
            "[domain-name:value = 'a\\x.example']",
        ] {
            assert!(Pattern::parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(Pattern::parse(&format!("[domain-name:value = '{}']", "a".repeat(3000))).is_err());
    }

    #[test]
    fn quotes_inside_values_do_not_split_the_pattern() {
        let parsed = Pattern::parse("[software:name = 'it\\'s AND OR' AND software:version = '1']");
        let Ok(Pattern::Software(software)) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(software.name.as_deref(), Some("it's and or"));
    }
}
