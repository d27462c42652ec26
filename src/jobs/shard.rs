//! Sharding a run over several processes or machines (`--shard I/N`).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Part `index` of `count` (from 0): a file belongs to the shard its path below its input
/// folder hashes to, so that N processes with shards 0..N cover the inputs exactly once
/// (and write disjoint outputs) whatever order they list them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::InvalidSetting { name: "shard", problem: "must be I/N with 0 <= I < N" });
        }
        Ok(Shard { index, count })
    }

    pub fn covers(&self, rel: &Path) -> bool {
        let key: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
        let digest = Sha256::digest(key.join("/").as_bytes());
        let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        n % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_in_exactly_one_shard_and_the_shards_share_the_work() {
        let paths: Vec<String> = (0..3000).map(|i| format!("2026/day{}/IMG_{i:04}.jpg", i % 7)).collect();
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut sizes = [0; 3];
        for p in &paths {
            let owners: Vec<_> = shards.iter().filter(|s| s.covers(Path::new(p))).collect();
            assert_eq!(owners.len(), 1, "{p}");
            sizes[owners[0].index as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| (800..1200).contains(&n)), "{sizes:?}");
        // Fixed by the path alone, whatever the machine or the order of listing.
        assert!(Shard::new(0, 1).unwrap().covers(Path::new("a.jpg")));
        assert!(Shard::new(3, 3).is_err() && Shard::new(0, 0).is_err());
    }
}
