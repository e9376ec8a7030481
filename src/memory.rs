//! Giving freed memory back to the operating system.
//!
//! glibc's allocator keeps freed memory in its arenas for reuse, so resident memory stays at
//! its high-water mark after a large structure is dropped. We run for months beside a
//! shipper, mostly idle, and our memory figure is what operators see; after dropping
//! something large (the compiled user-agent rules, a page) we ask glibc to return whole free
//! pages. Elsewhere this is a no-op.
//!
//! [`configure`] fixes glibc's mmap threshold at 1 MiB. By default glibc raises the threshold
//! to the size of the largest mmapped block freed (up to 32 MiB), after which a 15 MB page
//! body is carved from the heap arenas and stays resident after it is freed: measured on a
//! 1,000,000-event backfill, peak RSS 97 MB with the default and 67 MB with the fixed threshold.

/// The mmap threshold we fix: blocks this large or larger get their own mapping.
pub(crate) const MMAP_THRESHOLD: usize = 1 << 20;

/// Sets the allocator up for a long-running process with large, short-lived buffers; call
/// once at start, before other threads exist.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc allocator parameter; called before any other thread
    // allocates, as glibc asks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Returns free heap pages to the operating system where the allocator keeps them.
pub(crate) fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and releases pages
    // that hold no live allocation; it takes no pointers from us and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
