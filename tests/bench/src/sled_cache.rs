//! `tfc-bench sled-cache`: how much of a loaded gateway's memory sled's page cache can hold.
//! The gateway's store opens sled with its default configuration, whose cache may grow to
//! 1 GiB; this writes the same kind of volume into a bare sled database, once with the
//! default cache and once with a bounded one, and reports the RSS each leaves behind.

use serde_json::{Value, json};

use crate::resources::rss_bytes;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The RSS growth after writing `values` values of `value_bytes` into a fresh database with
/// `cache_bytes` of cache (sled's default if `None`), and the bytes on disk.
fn fill(values: usize, value_bytes: usize, cache_bytes: Option<u64>) -> anyhow::Result<(u64, u64)> {
    let dir = tempfile::tempdir()?;
    let before = rss_bytes()?;
    let mut config = sled::Config::new().path(dir.path());
    if let Some(cache) = cache_bytes {
        config = config.cache_capacity(cache);
    }
    let db = config.open()?;
    let tree = db.open_tree("bench")?;
    let value = vec![b'v'; value_bytes];
    for n in 0..values {
        tree.insert(format!("key-{n:012}").as_bytes(), value.as_slice())?;
    }
    db.flush()?;
    let grown = rss_bytes()?.saturating_sub(before);
    drop(tree);
    drop(db);
    Ok((grown, crate::memory::disk_usage(dir.path())))
}

/// Runs both fills, the bounded one first (a later fill may reuse memory an earlier one
/// freed but the allocator kept, which would understate its growth).
pub(crate) fn run(values: usize, value_bytes: usize, cache_mib: u64) -> anyhow::Result<Value> {
    let bounded = fill(values, value_bytes, Some(cache_mib * 1024 * 1024))?;
    let default = fill(values, value_bytes, None)?;
    Ok(json!({
        "scenario": "sled-cache",
        "values": values,
        "value_bytes": value_bytes,
        "bounded_cache_mib": cache_mib,
        "rss_growth_mb_bounded_cache": mb(bounded.0),
        "rss_growth_mb_default_cache": mb(default.0),
        "on_disk_mb": mb(default.1),
    }))
}
