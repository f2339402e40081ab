//! The core's timers, started with it: the storage flusher (group commit), the schedule timer,
//! and one periodic sweep that hibernates and evicts idle actors and rooms, times out calls and
//! ends sessions whose resume window is over. All stop at shutdown (the flusher once the store
//! is released).

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::Core;

/// The clock of one of the core's periodic tasks: [`Ticker::tick`] waits for the next period
/// and answers false once the server shuts down. A tick missed while the task was busy is
/// skipped, not caught up.
pub(super) struct Ticker {
  ticks: Interval,
  shutdown: watch::Receiver<bool>,
}

impl Ticker {
  pub(super) async fn tick(&mut self) -> bool {
    tokio::select! {
      _ = self.shutdown.wait_for(|stopping| *stopping) => false,
      _ = self.ticks.tick() => true,
    }
  }
}

impl Core {
  /// A [`Ticker`] of `period` (called from within the runtime).
  pub(super) fn ticker(&self, period: Duration) -> Ticker {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    Ticker {
      ticks,
      shutdown: self.shutdown.subscribe(),
    }
  }
}

/// Starts the timers of `core` on `runtime`.
pub(super) fn start(core: &Arc<Core>, runtime: &Handle) {
  let flusher = core.clone();
  runtime.spawn(async move {
    flusher
      .storage
      .run_flusher(|level, message| flusher.report(level, message))
      .await;
  });
  let timer = core.clone();
  runtime.spawn(async move {
    let mut shutdown = timer.shutdown.subscribe();
    while let Some(due) = timer.schedules.next_due(&mut shutdown).await {
      for schedule in due {
        match &timer.cluster {
          Some(cluster) => timer.fire_claimed(cluster, schedule).await,
          None => timer.fire(schedule),
        }
      }
    }
  });
  runtime.spawn(sweep_loop(core.clone()));
}

/// How often the sweep runs: often enough for the shortest of the idle, call and resume
/// limits, between 10 ms and 1 s.
fn sweep_period(core: &Core) -> Duration {
  let config = &core.config;
  let mut period = (config.hibernate_after / 2).min(config.call_timeout / 4);
  if !config.resume_window.is_zero() {
    period = period.min(config.resume_window / 2);
  }
  period.clamp(Duration::from_millis(10), Duration::from_secs(1))
}

async fn sweep_loop(core: Arc<Core>) {
  let mut ticks = core.ticker(sweep_period(&core));
  while ticks.tick().await {
    for (definition, key) in core.registry.sweep(core.config.hibernate_after) {
      core.release_claim(definition, &key);
    }
    core.time_out_calls();
    core.end_waiting(false);
  }
}
