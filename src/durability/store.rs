//! Storage: the only module that names sled. Everything durable — actor state, room state, the
//! room list of each user — is a key/value pair in one sled tree, so a batch of writes across
//! actors and rooms is applied atomically and made durable by one flush (group commit).
//!
//! Keys are a tag byte and NUL-separated parts: `a\0<definition>\0<userId>` (actor state),
//! `r\0<room handler>\0<room>` (room state), `l\0<definition>\0<userId>` (room list). Values are
//! opaque bytes (the JS codec's output, or the room list as JSON).
//!
//! Swapping the engine means reimplementing [`Store`] and nothing else.

use crate::config::{Location, STORE_CACHE_BYTES};
use crate::error::StoreError;

impl From<sled::Error> for StoreError {
  fn from(error: sled::Error) -> Self {
    StoreError::Io(error.to_string())
  }
}

/// The key of a stored record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key<'a> {
  ActorState {
    definition: &'a str,
    user: &'a str,
  },
  RoomState {
    handler: &'a str,
    room: &'a str,
  },
  RoomList {
    definition: &'a str,
    user: &'a str,
  },
  /// A scheduled event; its owner and content are in the value.
  Schedule {
    id: &'a str,
  },
}

/// Prefix of every [`Key::Schedule`].
pub const SCHEDULE_PREFIX: &[u8] = b"s\0";

impl Key<'_> {
  pub fn encode(&self) -> Vec<u8> {
    let (tag, first, second) = match self {
      Key::Schedule { id } => {
        let mut out = SCHEDULE_PREFIX.to_vec();
        out.extend_from_slice(id.as_bytes());
        return out;
      }
      Key::ActorState { definition, user } => (b'a', definition, user),
      Key::RoomState { handler, room } => (b'r', handler, room),
      Key::RoomList { definition, user } => (b'l', definition, user),
    };
    let mut out = Vec::with_capacity(3 + first.len() + second.len());
    out.push(tag);
    out.push(0);
    out.extend_from_slice(first.as_bytes());
    out.push(0);
    out.extend_from_slice(second.as_bytes());
    out
  }
}

/// One write of a batch: a value, or a deletion when `None`.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A stored record: key and value.
pub type Record = (Vec<u8>, Vec<u8>);

pub struct Store {
  db: sled::Db,
  tree: sled::Tree,
}

impl Store {
  pub fn open(location: &Location) -> Result<Self, StoreError> {
    let config = sled::Config::new().cache_capacity(STORE_CACHE_BYTES);
    let config = match location {
      Location::Memory => config.temporary(true),
      Location::Directory(path) => {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        config.path(path)
      }
    };
    let db = config.open().map_err(|error| match (location, &error) {
      (Location::Directory(path), sled::Error::Io(io)) if is_lock_error(io) => {
        StoreError::Locked(path.clone())
      }
      _ => StoreError::Open(error.to_string()),
    })?;
    let tree = db.open_tree("warren")?;
    Ok(Self { db, tree })
  }

  pub fn get(&self, key: &Key<'_>) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(self.tree.get(key.encode())?.map(|value| value.to_vec()))
  }

  /// Applies writes atomically. They are visible to reads at once and durable after the next
  /// [`Store::flush`].
  pub fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
      match value {
        Some(value) => batch.insert(key, value),
        None => batch.remove(key),
      }
    }
    Ok(self.tree.apply_batch(batch)?)
  }

  /// Makes every applied write durable (fsync).
  pub async fn flush(&self) -> Result<(), StoreError> {
    self.db.flush_async().await?;
    Ok(())
  }

  /// Every record whose key starts with `prefix` (start-up loading).
  pub fn scan(&self, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
    self
      .tree
      .scan_prefix(prefix)
      .map(|item| {
        item
          .map(|(k, v)| (k.to_vec(), v.to_vec()))
          .map_err(StoreError::from)
      })
      .collect()
  }

  /// Same as [`Store::flush`], blocking the caller (shutdown, tests).
  pub fn flush_now(&self) -> Result<(), StoreError> {
    self.db.flush()?;
    Ok(())
  }
}

fn is_lock_error(error: &std::io::Error) -> bool {
  error.kind() == std::io::ErrorKind::WouldBlock || error.to_string().contains("lock")
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::path::PathBuf;

  fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
  }

  #[test]
  fn writes_survive_reopening_the_directory() {
    let dir = temp_dir("reopen");
    let key = Key::ActorState {
      definition: "UserConnection",
      user: "alice",
    };
    {
      let store = Store::open(&Location::Directory(dir.clone())).expect("open");
      store
        .apply(vec![(key.encode(), Some(b"state".to_vec()))])
        .expect("apply");
      store.flush_now().expect("flush");
    }
    let store = Store::open(&Location::Directory(dir.clone())).expect("reopen");
    assert_eq!(store.get(&key), Ok(Some(b"state".to_vec())));
    store.apply(vec![(key.encode(), None)]).expect("delete");
    assert_eq!(store.get(&key), Ok(None));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
  }

  #[test]
  fn a_second_owner_of_a_directory_gets_a_clear_error() {
    let dir = temp_dir("locked");
    let _first = Store::open(&Location::Directory(dir.clone())).expect("open");
    let second = Store::open(&Location::Directory(dir.clone()));
    assert_eq!(second.err(), Some(StoreError::Locked(dir.clone())));
    let _ = std::fs::remove_dir_all(&dir);
  }

  #[test]
  fn keys_of_different_kinds_never_collide() {
    let a = Key::ActorState {
      definition: "a",
      user: "b\0c",
    }
    .encode();
    let b = Key::RoomList {
      definition: "a",
      user: "b\0c",
    }
    .encode();
    assert_ne!(a, b);
    assert_ne!(
      Key::ActorState {
        definition: "ab",
        user: "c"
      }
      .encode(),
      Key::ActorState {
        definition: "a",
        user: "bc"
      }
      .encode()
    );
  }
}
