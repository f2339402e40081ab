//! Room name -> member outboxes. A publish encodes the frame once into `Utf8Bytes`; each member gets a
//! clone (a reference-count bump), never its own copy.
//!
//! The std `Mutex` is held only for synchronous `try_send`s, never across an `.await`, so it cannot
//! stall the runtime; on one core it is never contended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc::Sender;
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub type Outbox = Sender<Utf8Bytes>;

#[derive(Default)]
pub struct Rooms {
    members: Mutex<HashMap<String, HashMap<u64, Outbox>>>,
    /// Frames not queued because a member's outbox was full (that member is not reading).
    pub dropped: AtomicU64,
}

impl Rooms {
    pub fn join(&self, room: &str, session: u64, outbox: Outbox) {
        let mut rooms = self.members.lock().expect("no panics while the rooms lock is held");
        rooms.entry(room.to_string()).or_default().insert(session, outbox);
    }

    pub fn leave(&self, room: &str, session: u64) {
        let mut rooms = self.members.lock().expect("no panics while the rooms lock is held");
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&session);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Queues `frame` for every member except `sender`; returns the members reached.
    pub fn publish(&self, room: &str, sender: u64, frame: Utf8Bytes) -> usize {
        let rooms = self.members.lock().expect("no panics while the rooms lock is held");
        let Some(members) = rooms.get(room) else { return 0 };
        let mut reached = 0;
        for (&id, outbox) in members {
            if id == sender {
                continue;
            }
            if outbox.try_send(frame.clone()).is_ok() {
                reached += 1;
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        reached
    }
}
