//! Identifiers of the things the core keeps, one type each, so a session number cannot be
//! passed where an actor is expected. JS sees them as plain numbers in the event batch.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

macro_rules! id_type {
  ($(#[$doc:meta])* $name:ident($inner:ty)) => {
    $(#[$doc])*
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct $name(pub $inner);

    impl $name {
      /// The number JS knows it by.
      pub fn get(self) -> $inner {
        self.0
      }
    }

    impl fmt::Display for $name {
      fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
      }
    }

    impl serde::Serialize for $name {
      fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
      }
    }
  };
}

id_type!(
  /// One WebSocket session (a tab, a device). It outlives its socket while it waits for a resume.
  SessionId(u64)
);
id_type!(
  /// One actor in memory: a connection definition's user (or an actor class's key).
  ActorId(u64)
);
id_type!(
  /// One room instance in memory, by full name (`chat`, `conversation:123`).
  RoomId(u64)
);
id_type!(
  /// A connection definition: its index in the server's configuration.
  DefinitionId(usize)
);
id_type!(
  /// A room handler: its index in the server's configuration.
  HandlerId(usize)
);
id_type!(
  /// An upgrade request waiting for `extractMeta`.
  RequestId(u64)
);

/// Hashes the identifiers above for the core's maps. They are numbers the server hands out,
/// never chosen by a client, so they need no defence against chosen collisions (SipHash's
/// reason to be slow): one multiply spreads consecutive numbers over every bucket. Lookups by
/// these ids happen several times per client message.
#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

/// An odd constant with bits spread evenly (2^64 divided by the golden ratio).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
  fn write(&mut self, bytes: &[u8]) {
    for &byte in bytes {
      self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(SPREAD);
    }
  }

  fn write_u64(&mut self, n: u64) {
    self.0 = (self.0 ^ n).wrapping_mul(SPREAD);
  }

  fn write_usize(&mut self, n: usize) {
    self.write_u64(n as u64);
  }

  fn finish(&self) -> u64 {
    self.0
  }
}

/// A map keyed by one of the core's identifiers.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn consecutive_ids_land_in_distinct_buckets() {
    let mut map: IdMap<SessionId, u64> = IdMap::default();
    for n in 0..10_000u64 {
      map.insert(SessionId(n), n);
    }
    assert!((0..10_000u64).all(|n| map.get(&SessionId(n)) == Some(&n)));
    let buckets: std::collections::HashSet<u64> = (0..1024u64)
      .map(|n| {
        let mut hasher = IdHasher::default();
        std::hash::Hash::hash(&SessionId(n), &mut hasher);
        hasher.finish() & 1023
      })
      .collect();
    assert_eq!(buckets.len(), 1024, "1,024 consecutive ids fill 1,024 buckets");
  }
}
