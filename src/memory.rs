//! Giving freed memory back to the operating system.
//!
//! glibc's allocator keeps freed memory in its arenas for reuse, so resident memory stays at
//! its high-water mark after a large structure is dropped. We run for months beside a
//! shipper, mostly idle, and our memory figure is what operators see; after dropping
//! something large (the compiled user-agent rules, a page) we ask glibc to return whole free
//! pages. Elsewhere this is a no-op.

/// Returns free heap pages to the operating system where the allocator keeps them.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and releases pages
    // that hold no live allocation; it takes no pointers from us and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
