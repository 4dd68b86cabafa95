//! Tables keyed by hashes the host computed itself. The retry cache keys its table by a
//! message key's hash and the replay memory by a signature's, both with a hasher keyed at
//! random when the process starts ([`process_hasher`]); `HashMap`'s default hasher would hash
//! those `u64`s again with SipHash, on every lookup and insert, for nothing: they are already
//! spread evenly and cannot be predicted from outside. [`PreHashed`] passes them through.

use std::hash::{BuildHasherDefault, Hasher, RandomState};
use std::sync::OnceLock;

/// The hasher for the host's own table keys: keyed at random once per process, so a key
/// hashes the same way for the process's life and an outsider cannot aim keys at one bucket.
pub fn process_hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

/// A [`Hasher`] for keys that are already such hashes: a `u64` key is its own hash.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }

    /// Not used by `u64` keys; folds bytes in so another key type still hashes correctly.
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(5) ^ u64::from(*byte);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `BuildHasher` of [`PassThrough`], for `HashMap<u64, _, PreHashed>`.
pub type PreHashed = BuildHasherDefault<PassThrough>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn a_u64_key_is_its_own_hash() {
        for key in [0u64, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(PreHashed::default().hash_one(key), key);
        }
    }

    #[test]
    fn the_process_hasher_is_the_same_all_along() {
        let a = process_hasher().hash_one("acct/oUser|123");
        assert_eq!(process_hasher().hash_one("acct/oUser|123"), a);
        assert_ne!(process_hasher().hash_one("acct/oUser|124"), a);
    }
}
