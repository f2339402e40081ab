//! Storage integrity on a real directory: a store that lost sled's snapshot file
//! refuses to start instead of starting empty; a new directory and a sound one start.

mod common;

use common::{config, temp_dir};
use warren::config::{Location, ServerConfig};
use warren::core::Core;
use warren::durability::records::StateOf;

const ALICE: StateOf<'static> = StateOf::Actor {
  definition: "UserConnection",
  user: "alice",
};

fn on_disk(dir: &std::path::Path) -> ServerConfig {
  ServerConfig {
    storage: Location::Directory(dir.to_path_buf()),
    ..config(false)
  }
}

fn stop(core: &std::sync::Arc<Core>) {
  core.begin_shutdown(&tokio::runtime::Handle::current());
  core.release().expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_lost_its_snapshot_refuses_to_start() {
  let dir = temp_dir("lost-snapshot");
  let runtime = tokio::runtime::Handle::current();
  let core = Core::new(on_disk(&dir), &runtime).expect("a new directory starts");
  // 6 MiB in one commit: sled gives back none of it from its log alone.
  let users: Vec<String> = (0..3000).map(|n| format!("user{n}")).collect();
  let state = vec![b'x'; 2048];
  let mut writes: Vec<(StateOf<'_>, Option<Vec<u8>>)> = users
    .iter()
    .map(|user| {
      let of = StateOf::Actor {
        definition: "UserConnection",
        user,
      };
      (of, Some(state.clone()))
    })
    .collect();
  writes.push((ALICE, Some(b"count=7".to_vec())));
  core.commit_state(writes).expect("commit");
  stop(&core);
  drop(core);

  let core = Core::new(on_disk(&dir), &runtime).expect("a sound directory starts");
  assert_eq!(core.load_state(ALICE), Ok(Some(b"count=7".to_vec())));
  stop(&core);
  drop(core);

  let mut removed = 0;
  for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
    if entry.file_name().to_string_lossy().starts_with("snap.") {
      std::fs::remove_file(entry.path()).expect("remove snap");
      removed += 1;
    }
  }
  assert!(removed > 0, "sled wrote a snapshot file");
  match Core::new(on_disk(&dir), &runtime) {
    Err(error) => {
      assert_eq!(error.code(), "storage_corrupt");
      assert!(error.to_string().contains("snap"), "{error}");
    }
    Ok(core) => {
      let state = core.load_state(ALICE);
      let kept = users
        .iter()
        .filter(|user| {
          let of = StateOf::Actor {
            definition: "UserConnection",
            user,
          };
          matches!(core.load_state(of), Ok(Some(_)))
        })
        .count();
      stop(&core);
      panic!(
        "the damaged store started with {kept} of {} states; alice's reads {state:?}",
        users.len()
      );
    }
  }
  let _ = std::fs::remove_dir_all(&dir);
}
