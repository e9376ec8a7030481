//! FNV-1a (64 bits, and 128 for document ids): the one stable hash. Stable across Rust versions, platforms and runs
//! (unlike `DefaultHasher`), so what is derived from it can be stored and compared later: an
//! event id made from an entry's bytes survives a restart in the checkpoint, and a simulator
//! seed issues the same cursors everywhere.
//!
//! A leaf: it imports nothing of this crate.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// An FNV-1a hasher, fed piece by piece.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

impl Fnv {
    /// The FNV offset basis.
    pub(crate) fn new() -> Fnv {
        Fnv(OFFSET_BASIS)
    }

    /// The hash of `bytes` alone.
    pub(crate) fn hash(bytes: &[u8]) -> u64 {
        let mut h = Fnv::new();
        h.write(bytes);
        h.finish()
    }

    /// Mixes in bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    /// Mixes in an integer (little-endian bytes).
    #[cfg(feature = "simulator")]
    pub(crate) fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    /// Mixes in an optional string, keeping `None` and `Some("")` apart (and, with the end
    /// marker, `("ab", "c")` and `("a", "bc")`).
    #[cfg(feature = "simulator")]
    pub(crate) fn write_opt(&mut self, v: Option<&str>) {
        match v {
            None => self.write(&[0]),
            Some(s) => {
                self.write(&[1]);
                self.write(s.as_bytes());
                self.write(&[0xff]);
            }
        }
    }

    /// The hash so far.
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

const OFFSET_BASIS_128: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const PRIME_128: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// FNV-1a with 128 bits, for ids that name documents (finding ids), where 64 bits would make a
/// collision across an org's history thinkable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Fnv128 {
        Fnv128::new()
    }
}

impl Fnv128 {
    /// The FNV offset basis.
    pub(crate) fn new() -> Fnv128 {
        Fnv128(OFFSET_BASIS_128)
    }

    /// Mixes in bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(PRIME_128);
        }
    }

    /// The hash so far.
    pub(crate) fn finish(self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(Fnv::hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv::hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv::hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_128_bit_variant_matches_its_test_vectors() {
        let h = |b: &[u8]| {
            let mut f = Fnv128::new();
            f.write(b);
            f.finish()
        };
        assert_eq!(h(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(h(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }

    #[test]
    fn pieces_hash_as_their_concatenation() {
        let mut h = Fnv::new();
        h.write(b"foo");
        h.write(b"bar");
        assert_eq!(h.finish(), Fnv::hash(b"foobar"));
    }
}
