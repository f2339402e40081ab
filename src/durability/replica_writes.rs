//! The writes through to the replica (cluster mode): those applied and not yet sent, in order,
//! and those it did not take (Redis unreachable, or not answering in time), kept and written
//! again until it does.
//!
//! A change whose write-through failed stays in its actor's memory (the call that made it got
//! `storage_unavailable`: nothing of it was acknowledged). Left there, it would reach Redis only
//! with the actor's next change, and never if the actor left this node first: the node that
//! holds the actor next would read the state without it. So the write is kept here and goes
//! again with every round of the group commit, and by itself every [`REPLICA_RETRY`] while
//! nothing else is committed, until Redis answers; and giving the actor's (or a room's) claim up
//! waits until its writes are in ([`ReplicaWrites::defer_release`]).
//!
//! Bound: the latest write of each record is kept (a newer write of the same record replaces
//! it), so at most one per record of the actors this node holds. A round Redis refuses (fenced:
//! the actors have another owner now) drops what it carried: those writes belong to a claim
//! this node lost.
//!
//! [`REPLICA_RETRY`]: crate::config::REPLICA_RETRY

use std::collections::HashSet;

use super::{ReplicaError, ReplicaWrite};

#[derive(Default)]
pub struct ReplicaWrites {
  /// Applied writes not yet in a round, in order.
  fresh: Vec<ReplicaWrite>,
  /// Writes not known to be stored, oldest first, at most one per record key.
  pending: Vec<ReplicaWrite>,
  /// Actors (directory keys) with writes in the round being written.
  in_flight: HashSet<String>,
  /// Actors whose claim is given up once their writes are in.
  releases: Vec<String>,
}

impl ReplicaWrites {
  /// Queues applied writes for the next round.
  pub fn push(&mut self, writes: Vec<ReplicaWrite>) {
    self.fresh.extend(writes);
  }

  /// Whether writes wait for the replica to answer again.
  pub fn retrying(&self) -> bool {
    !self.pending.is_empty()
  }

  /// The writes of the next round, in order: what is still pending (unless a fresh write
  /// rewrites the same record), then the fresh ones; and how many are fresh.
  pub fn round(&mut self) -> (Vec<ReplicaWrite>, usize) {
    let fresh = std::mem::take(&mut self.fresh);
    let count = fresh.len();
    let rewritten: HashSet<&[u8]> = fresh.iter().map(|write| write.key.as_slice()).collect();
    let mut writes: Vec<ReplicaWrite> = std::mem::take(&mut self.pending)
      .into_iter()
      .filter(|old| !rewritten.contains(old.key.as_slice()))
      .collect();
    writes.extend(fresh);
    self.in_flight = writes.iter().map(|write| write.fence.actor.clone()).collect();
    (writes, count)
  }

  /// The replica's answer to the round of `writes`. Returns the actors whose claims may be given
  /// up now: their writes are in (or were refused, the claim being lost anyway), unless fresh
  /// writes of theirs wait for the next round.
  pub fn finished(&mut self, writes: Vec<ReplicaWrite>, outcome: &Result<(), ReplicaError>) -> Vec<String> {
    self.in_flight.clear();
    if let Err(ReplicaError::Unreachable(_)) = outcome {
      self.pending = latest_of_each_record(writes);
      return Vec::new();
    }
    let (now, later): (Vec<String>, Vec<String>) = std::mem::take(&mut self.releases)
      .into_iter()
      .partition(|actor| !writes_of(&self.fresh, actor));
    self.releases = later;
    now
  }

  /// Whether giving the claim of `actor` up must wait for its writes (true: it is given up
  /// once they are in, see [`ReplicaWrites::finished`]).
  pub fn defer_release(&mut self, actor: &str) -> bool {
    let waits =
      self.in_flight.contains(actor) || writes_of(&self.fresh, actor) || writes_of(&self.pending, actor);
    if waits && !self.releases.iter().any(|waiting| waiting == actor) {
      self.releases.push(actor.to_owned());
    }
    waits
  }
}

/// Whether `writes` has one of `actor`'s.
fn writes_of(writes: &[ReplicaWrite], actor: &str) -> bool {
  writes.iter().any(|write| write.fence.actor == actor)
}

/// `writes` with only the last write of each record kept, in their order.
fn latest_of_each_record(writes: Vec<ReplicaWrite>) -> Vec<ReplicaWrite> {
  let mut seen = HashSet::new();
  let mut kept: Vec<ReplicaWrite> = writes
    .into_iter()
    .rev()
    .filter(|write| seen.insert(write.key.clone()))
    .collect();
  kept.reverse();
  kept
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::durability::Fence;

  fn write(actor: &str, key: &str, value: &str) -> ReplicaWrite {
    ReplicaWrite {
      key: key.as_bytes().to_vec(),
      value: Some(value.as_bytes().to_vec()),
      fence: Fence {
        actor: actor.into(),
        token: 1,
      },
      release: false,
    }
  }

  fn values(writes: &[ReplicaWrite]) -> Vec<String> {
    writes
      .iter()
      .map(|write| String::from_utf8_lossy(write.value.as_deref().unwrap_or_default()).into_owned())
      .collect()
  }

  const UNREACHABLE: Result<(), ReplicaError> = Err(ReplicaError::Unreachable(String::new()));

  #[test]
  fn writes_the_replica_did_not_take_go_again_unless_rewritten() {
    let mut writes = ReplicaWrites::default();
    writes.push(vec![
      write("a", "ka", "1"),
      write("b", "kb", "1"),
      write("a", "ka", "2"),
    ]);
    let (first, _) = writes.round();
    assert!(writes.finished(first, &UNREACHABLE).is_empty());
    assert!(writes.retrying());
    // The next round carries them before its own writes; a record written again goes once.
    writes.push(vec![write("b", "kb", "3"), write("c", "kc", "1")]);
    let (second, fresh) = writes.round();
    assert_eq!(
      (values(&second), fresh),
      (vec!["2".to_string(), "3".into(), "1".into()], 2)
    );
    assert!(writes.finished(second, &Ok(())).is_empty());
    assert!(!writes.retrying());
    assert!(writes.round().0.is_empty());
  }

  #[test]
  fn a_claim_is_given_up_only_once_its_actors_writes_are_in() {
    let mut writes = ReplicaWrites::default();
    writes.push(vec![write("a", "ka", "1")]);
    let (round, _) = writes.round();
    assert!(writes.defer_release("a"), "a's write is being written");
    assert!(!writes.defer_release("b"), "b has nothing to write");
    assert!(writes.finished(round, &UNREACHABLE).is_empty());
    assert!(writes.defer_release("a"), "a's write waits for Redis");
    let (round, _) = writes.round();
    // The round went in, but a newer write of a waits for the next one.
    writes.push(vec![write("a", "ka", "2")]);
    assert!(writes.finished(round, &Ok(())).is_empty());
    let (round, _) = writes.round();
    assert_eq!(writes.finished(round, &Ok(())), ["a"]);
  }

  #[test]
  fn a_refused_round_drops_its_writes_and_lets_the_claims_go() {
    let mut writes = ReplicaWrites::default();
    writes.push(vec![write("a", "ka", "1")]);
    let (round, _) = writes.round();
    assert!(writes.defer_release("a"));
    let fenced = Err(ReplicaError::Fenced(String::new()));
    assert_eq!(writes.finished(round, &fenced), ["a"]);
    assert!(!writes.retrying());
  }
}
