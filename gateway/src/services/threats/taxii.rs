//! TAXII 2.1: discovery, one API root, one collection per joined field, the collection's
//! objects with `added_after` and pagination, and adding objects (with the status resource).
//! The HTTP side is in `api`.

use serde_json::{Value, json};

use super::Threats;
use crate::field::Field;
pub use crate::threats::format_timestamp_ms as timestamp;
use crate::threats::{ThreatCode, ThreatError};

/// The TAXII media type.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// The STIX media type of the objects served.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// The API root's path under the server.
pub const API_ROOT: &str = "/taxii2/tfc/";
/// Objects per page unless the client asks for fewer.
pub const MAX_PAGE: usize = 500;

/// The discovery resource.
pub fn discovery() -> Value {
    json!({
        "title": "TFC gateway",
        "description": "Threat indicators shared in this gateway's trust fields",
        "default": API_ROOT,
        "api_roots": [API_ROOT],
    })
}

/// The API root resource.
pub fn api_root() -> Value {
    json!({
        "title": "TFC trust fields",
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": crate::threats::MAX_BUNDLE_BYTES,
    })
}

/// A field's collection id: a UUID made from the field id (TAXII ids are UUIDs).
pub fn collection_id(field_id: &str) -> String {
    let hex: String = field_id.chars().take(32).collect();
    if hex.len() < 32 {
        return uuid::Uuid::nil().to_string();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A field's collection resource; `can_write` says whether this caller may add objects.
pub fn collection(field: &Field, can_write: bool) -> Value {
    let field_id = field.charter.field_id();
    json!({
        "id": collection_id(&field_id),
        "title": field.charter.name,
        "description": format!("Indicators of trust field {field_id}"),
        "can_read": true,
        "can_write": can_write,
        "media_types": [STIX_MEDIA_TYPE],
    })
}

/// The most objects one add request may carry.
pub const MAX_ADD_OBJECTS: usize = 1_000;

/// The objects of a TAXII envelope posted to a collection, as one STIX bundle for the
/// threat book (which checks it as it checks gossip).
pub fn bundle_of_envelope(envelope: &Value) -> Result<Value, ThreatError> {
    let malformed = |message: &str| ThreatError::new(ThreatCode::Malformed, message.to_owned());
    let objects = envelope
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("a TAXII envelope needs an \"objects\" array"))?;
    if objects.is_empty() || objects.len() > MAX_ADD_OBJECTS {
        return Err(malformed(&format!(
            "an envelope carries 1 to {MAX_ADD_OBJECTS} objects"
        )));
    }
    Ok(json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v4()),
        "objects": objects,
    }))
}

/// The status resource of an add request that is finished: every object succeeded, or
/// every one failed with `failure` (the book takes a bundle whole or not at all).
pub fn add_status(id: &str, requested_ms: i64, bundle: &Value, failure: Option<&str>) -> Value {
    let objects: Vec<Value> = bundle
        .get("objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|object| {
            let mut entry = json!({
                "id": object.get("id").cloned().unwrap_or(Value::Null),
                "version": object.get("modified").cloned().unwrap_or(Value::Null),
            });
            if let (Some(message), Some(entry)) = (failure, entry.as_object_mut()) {
                entry.insert("message".into(), Value::String(message.to_owned()));
            }
            entry
        })
        .collect();
    let total = objects.len();
    let (successes, failures) = match failure {
        None => (objects, Vec::new()),
        Some(_) => (Vec::new(), objects),
    };
    json!({
        "id": id,
        "status": "complete",
        "request_timestamp": timestamp(requested_ms),
        "total_count": total,
        "success_count": successes.len(),
        "successes": successes,
        "failure_count": failures.len(),
        "failures": failures,
        "pending_count": 0,
        "pendings": [],
    })
}

/// One page of a collection's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The TAXII envelope.
    pub envelope: Value,
    /// When the first and last objects were added (Unix ms), for the `X-TAXII-Date-Added-*`
    /// headers.
    pub added: Option<(i64, i64)>,
}

/// The objects of `field` added after `added_after_ms`, or after the position `next` of
/// an earlier page, at most `limit` of them.
pub fn objects(
    threats: &Threats,
    field_id: &str,
    added_after_ms: Option<i64>,
    next: Option<&str>,
    limit: Option<usize>,
) -> Result<Page, ThreatError> {
    let limit = limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let after = match (next, added_after_ms) {
        (Some(next), _) => Some(decode_next(field_id, next)?),
        // Keys are `<field>/<ms, 16 hex>/…`; 0xff sorts after every key of that millisecond.
        (None, Some(ms)) => Some(
            [
                format!("{field_id}/{:016x}/", ms.max(0)).into_bytes(),
                vec![0xff],
            ]
            .concat(),
        ),
        (None, None) => None,
    };
    // One more than asked tells whether there are more.
    let mut held = threats.objects(field_id, after.as_deref(), limit + 1)?;
    let more = held.len() > limit;
    held.truncate(limit);
    let last = held.last().map(|held| held.position.clone());
    let added = held
        .first()
        .zip(held.last())
        .map(|(first, last)| (first.added_ms, last.added_ms));
    let mut envelope = json!({ "more": more });
    if more && let Some(last) = &last {
        envelope["next"] = Value::String(encode_next(last));
    }
    if !held.is_empty() {
        envelope["objects"] = Value::Array(
            held.into_iter()
                .map(|held| Value::Object(held.object))
                .collect(),
        );
    }
    Ok(Page { envelope, added })
}

fn encode_next(position: &[u8]) -> String {
    crate::hex::encode(position)
}

fn decode_next(field_id: &str, next: &str) -> Result<Vec<u8>, ThreatError> {
    let bad = || {
        ThreatError::new(
            ThreatCode::Malformed,
            "next is not a position this server gave",
        )
    };
    if next.len() > 2048 {
        return Err(bad());
    }
    let bytes = crate::hex::decode(next).ok_or_else(bad)?;
    if !bytes.starts_with(format!("{field_id}/").as_bytes()) {
        return Err(bad());
    }
    Ok(bytes)
}

/// Parses an `added_after` timestamp into Unix milliseconds.
pub fn parse_timestamp(text: &str) -> Result<i64, ThreatError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
        .map_err(|_| {
            ThreatError::new(
                ThreatCode::Malformed,
                format!("added_after {text:?} is not an RFC 3339 timestamp"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_ids_are_uuids_and_positions_round_trip() {
        let id = collection_id(&"ab".repeat(32));
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        let field = "cd".repeat(32);
        let position = format!("{field}/00000000000000ff/x").into_bytes();
        assert_eq!(
            decode_next(&field, &encode_next(&position)).unwrap(),
            position
        );
        assert!(decode_next(&field, "zz").is_err());
        assert!(decode_next(&"ef".repeat(32), &encode_next(&position)).is_err());
        assert_eq!(
            parse_timestamp(&timestamp(1_700_000_000_123)).unwrap(),
            1_700_000_000_123
        );
    }
}
