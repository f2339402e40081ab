//! Schedules in cluster mode (see [`crate::cluster::alarms`]): the node that holds an actor
//! has its schedules in its index and fires them, each taken out of Redis under the actor's
//! claim first (so it fires once); a node that claims an actor loads its schedules; and every
//! node wakes the actors no node holds whose schedules are due.

use std::sync::Arc;

use super::Core;
use crate::cluster::alarms::actor_of_key;
use crate::cluster::{Cluster, Placement};
use crate::config::{ALARM_BATCH, ALARM_POLL};
use crate::durability::store::Key;
use crate::error::CoreError;
use crate::events::Level;
use crate::ids::DefinitionId;
use crate::registry::rooms::now_ms;
use crate::schedules::Schedule;

impl Core {
  /// Loads the schedules Redis holds for an actor this node just claimed into its index.
  pub(super) async fn adopt_schedules(
    &self,
    cluster: &Cluster,
    definition: DefinitionId,
    key: &str,
  ) -> Result<(), CoreError> {
    let name = self.definition_name(definition);
    let actor = crate::cluster::wire::actor_key(name, key);
    let definition_of = |named: &str| (named == name).then_some(definition);
    for (id, record) in cluster.schedules_of(&actor).await? {
      if let Some(schedule) = Schedule::from_stored(&id, &record, definition_of) {
        self.schedules.restore(schedule);
      }
    }
    Ok(())
  }

  /// Fires a due schedule of an actor this node holds once Redis gave it up under the actor's
  /// claim. One this node no longer holds stays in Redis for the actor's next owner.
  pub(super) async fn fire_claimed(&self, cluster: &Cluster, schedule: Schedule) {
    let name = self.definition_name(schedule.definition);
    let Some(fence) = self.fence_of(name, &schedule.user) else {
      return;
    };
    match cluster.take_schedule(&fence, &schedule.id).await {
      Ok(true) => {
        if let Err(error) = self
          .storage
          .cache(vec![(Key::Schedule { id: &schedule.id }.encode(), None)])
        {
          self.report(Level::Error, &error.to_string());
        }
        // The actor may have left memory (and its claim) while Redis answered: it is claimed
        // again before it wakes here, so what its handler writes is written under a claim.
        if self.fence_of(name, &schedule.user).is_none() {
          if let Err(error) = self.reclaim(cluster, schedule.definition, &schedule.user).await {
            let message = format!(
              "schedule {} of {name} {:?} was taken but its actor could not be placed here: {error}",
              schedule.id, schedule.user
            );
            self.report(Level::Error, &message);
            return;
          }
        }
        self.announce_schedule(schedule);
      }
      Ok(false) => {}
      Err(error) => {
        let message = format!(
          "schedule {} of {name} {:?} not fired here: {error}",
          schedule.id, schedule.user
        );
        self.report(Level::Warn, &message);
      }
    }
  }

  /// Claims an actor for this node again (its records cached, its schedules loaded); an error
  /// when a live node holds it.
  async fn reclaim(&self, cluster: &Cluster, definition: DefinitionId, key: &str) -> Result<(), CoreError> {
    let name = self.definition_name(definition);
    match cluster.claim(name, key).await? {
      Placement::Here { fence, records } => {
        self.storage.cache(records)?;
        self.claims.lock().insert(fence.actor, fence.token);
        self.adopt_schedules(cluster, definition, key).await
      }
      Placement::Elsewhere { owner } => Err(CoreError::Cluster(format!("node {owner} holds it"))),
    }
  }

  /// Every [`ALARM_POLL`] until shutdown: claims the actors whose schedules are due and that no
  /// live node holds, and loads their schedules (the timer fires them).
  pub(super) async fn watch_alarms(self: Arc<Self>, cluster: Arc<Cluster>) {
    let mut ticks = self.ticker(ALARM_POLL);
    while ticks.tick().await {
      if self.fenced.load(std::sync::atomic::Ordering::Acquire) {
        continue;
      }
      let due = match cluster.due_alarms(now_ms(), ALARM_BATCH).await {
        Ok(due) => due,
        Err(error) => {
          self.report(Level::Warn, &error.to_string());
          continue;
        }
      };
      for actor in due {
        if self.claims.lock().contains_key(&actor) {
          continue;
        }
        if let Err(error) = self.wake_for_alarm(&cluster, &actor).await {
          self.report(Level::Warn, &format!("cluster: a due schedule waits: {error}"));
        }
      }
    }
  }

  /// Claims the actor of a due alarm unless a live node holds it, and loads its schedules.
  async fn wake_for_alarm(&self, cluster: &Arc<Cluster>, actor: &str) -> Result<(), CoreError> {
    let Some((name, key)) = actor_of_key(actor) else {
      return Ok(());
    };
    let Some(definition) = self.config.definitions.iter().position(|d| d.name == name) else {
      return Ok(());
    };
    let definition = DefinitionId(definition);
    let Placement::Here { fence, records } = cluster.claim(name, key).await? else {
      return Ok(());
    };
    self.claims.lock().insert(fence.actor, fence.token);
    let adopted = match self.storage.cache(records) {
      Ok(()) => self.adopt_schedules(cluster, definition, key).await,
      Err(error) => Err(error.into()),
    };
    if let Err(error) = adopted {
      self.release_claim(definition, key);
      return Err(error);
    }
    let due = self
      .schedules
      .of(definition, key)
      .first()
      .is_some_and(|soonest| soonest.at_ms <= now_ms());
    if !due && self.registry.actor_of(definition, key).is_none() {
      // Fired meanwhile by the node that held it: nothing to wake it for.
      self.release_claim(definition, key);
    }
    Ok(())
  }
}
