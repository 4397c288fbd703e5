//! The C allocator's settings for a long-running gateway.

/// The malloc arenas glibc may keep. By default it gives threads that allocate at the same
/// time arenas of their own, up to eight per core, and memory freed in one arena serves only
/// that arena: a gateway holding 100,000 indicators and 100,000 records (written from many
/// threads, with sled's flusher beside them) had 369 MB resident with the default and 313 MB
/// with two (docs/PERFORMANCE.md).
const MALLOC_ARENAS: i32 = 2;

/// Bounds glibc's malloc arenas. Call it first in `main`, before threads start. Elsewhere
/// than glibc on Linux it does nothing.
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter, and M_ARENA_MAX accepts any positive
    // count; it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}
