//! Storage: the only module that names sled. Everything durable — actor state, room state, the
//! room list of each user — is a key/value pair in one sled tree, so a batch of writes across
//! actors and rooms is applied atomically and made durable by one flush (group commit).
//!
//! Keys are a tag byte and NUL-separated parts: `a\0<definition>\0<userId>` (actor state),
//! `r\0<room handler>\0<room>` (room state), `l\0<definition>\0<userId>` (room list). Values are
//! opaque bytes (the JS codec's output, or the room list as JSON).
//!
//! Swapping the engine means reimplementing [`Store`] and nothing else.
//!
//! Integrity: sled opens a directory whose snapshot file (`snap.*`) was lost without
//! an error, but with only a prefix of its log: with a few MiB of data, next to nothing. So
//! every batch of writes also bumps a commit counter, a record ([`COMMITS_KEY`]) written in
//! the same atomic batch as the data, and the counter is copied into a file beside sled's
//! ([`MARKER_FILE`]) when the store opens and when it is released. A store whose counter is
//! behind its file's has lost data, and opening it fails with [`StoreError::Corrupt`] instead
//! of starting (nearly) empty. A directory without the file is new (or predates the counter).
//! Writes made after the last open that are lost with the snapshot are not detected.

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

/// The commit counter's record (tag `w`, which no other key uses): a big-endian u64.
pub const COMMITS_KEY: &[u8] = b"w\0commits";

/// The file beside sled's holding the commit counter the store had at its last open or release.
pub const MARKER_FILE: &str = "warren.store";

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

/// Free space a commit leaves for sled's log besides the batch itself (two of its 512 KiB
/// segments): below it the commit is refused, so sled never meets a full disk.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

pub struct Store {
  db: sled::Db,
  tree: sled::Tree,
  /// Batches applied since the directory was created (see the module doc); locked while a
  /// batch is applied, so the stored counter only grows.
  commits: parking_lot::Mutex<u64>,
  /// Where the counter is copied, for a store in a directory.
  marker: Option<std::path::PathBuf>,
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
    let commits = tree
      .get(COMMITS_KEY)?
      .and_then(|value| <[u8; 8]>::try_from(value.as_ref()).ok())
      .map_or(0, u64::from_be_bytes);
    let marker = match location {
      Location::Directory(path) => {
        let marker = path.join(MARKER_FILE);
        if read_marker(&marker)? > commits {
          return Err(StoreError::Corrupt(path.clone()));
        }
        Some(marker)
      }
      Location::Memory => None,
    };
    let store = Self {
      db,
      tree,
      commits: parking_lot::Mutex::new(commits),
      marker,
    };
    store.write_marker()?;
    Ok(store)
  }

  /// Copies the commit counter into the marker file; everything it counts must be durable.
  fn write_marker(&self) -> Result<(), StoreError> {
    let Some(path) = &self.marker else {
      return Ok(());
    };
    let commits = *self.commits.lock();
    let text = format!("warren store; its data is in sled's files beside this one\ncommits {commits}\n");
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)
      .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
      .and_then(|()| std::fs::rename(&temporary, path))
      .map_err(|error| StoreError::Open(format!("{}: {error}", path.display())))
  }

  pub fn get(&self, key: &Key<'_>) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(self.tree.get(key.encode())?.map(|value| value.to_vec()))
  }

  /// Applies writes atomically. They are visible to reads at once and durable after the next
  /// [`Store::flush`].
  pub fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
    self.check_room(&writes)?;
    let mut batch = sled::Batch::default();
    let mut commits = self.commits.lock();
    batch.insert(COMMITS_KEY, &(*commits + 1).to_be_bytes()[..]);
    for (key, value) in writes {
      match value {
        Some(value) => batch.insert(key, value),
        None => batch.remove(key),
      }
    }
    self.tree.apply_batch(batch)?;
    *commits += 1;
    Ok(())
  }

  /// Refuses a batch the disk may not have room for, before sled sees it: sled does not recover
  /// in place from a write the disk refused (it has to be reopened, and a failed instance may
  /// keep its directory locked), while a refusal here leaves it untouched, so commits go on as
  /// soon as the disk has room again. Room means the batch and [`MIN_FREE_BYTES`] besides.
  fn check_room(&self, writes: &[Write]) -> Result<(), StoreError> {
    let Some(directory) = self.marker.as_ref().and_then(|marker| marker.parent()) else {
      return Ok(());
    };
    let Ok(free) = fs2::available_space(directory) else {
      return Ok(());
    };
    let needed: u64 = writes
      .iter()
      .map(|(key, value)| (key.len() + value.as_ref().map_or(0, Vec::len)) as u64)
      .sum::<u64>()
      .saturating_mul(2)
      .saturating_add(MIN_FREE_BYTES);
    if free < needed {
      return Err(StoreError::Full(format!(
        "{free} bytes free, a batch needs {needed} (the batch twice over, and {MIN_FREE_BYTES} for the store's log)"
      )));
    }
    Ok(())
  }

  /// Makes every applied write durable (fsync).
  ///
  /// On tokio's blocking pool rather than sled's own: sled's pool wakes every idle thread of
  /// it (seven or more) for each task it is given, for one of them to take it.
  pub async fn flush(&self) -> Result<(), StoreError> {
    let db = self.db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
      Ok(flushed) => {
        flushed?;
        Ok(())
      }
      Err(_) => Err(StoreError::Io("the flush did not finish".into())),
    }
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

  /// Flushes, then records the commit counter beside the data (before the store is released).
  /// A marker that cannot be written is not an error here: the one from the last open holds a
  /// smaller count, which only makes the next check less strict.
  pub fn seal(&self) -> Result<(), StoreError> {
    self.flush_now()?;
    let _ = self.write_marker();
    Ok(())
  }
}

/// The counter in a marker file; 0 when there is none (a new directory).
fn read_marker(path: &std::path::Path) -> Result<u64, StoreError> {
  match std::fs::read_to_string(path) {
    Ok(text) => text
      .lines()
      .find_map(|line| line.strip_prefix("commits ")?.trim().parse().ok())
      .ok_or_else(|| StoreError::Open(format!("{}: unreadable", path.display()))),
    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
    Err(error) => Err(StoreError::Open(format!("{}: {error}", path.display()))),
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

  /// Opens a directory a dropped store used: sled's flusher thread lets go of the directory's
  /// lock a moment after the drop (the server waits for it in `Storage::release`).
  fn reopen(dir: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
      match Store::open(&Location::Directory(dir.to_path_buf())) {
        Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
          std::thread::sleep(std::time::Duration::from_millis(5));
        }
        opened => return opened.expect("reopen"),
      }
    }
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
    let store = reopen(&dir);
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
