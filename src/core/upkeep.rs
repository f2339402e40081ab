//! The core's timers, started with it: the storage flusher (group commit), the schedule timer,
//! and one periodic sweep that hibernates and evicts idle actors and rooms, times out calls and
//! ends sessions whose resume window is over. All stop at shutdown (the flusher once the store
//! is released).

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::Core;

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
  let mut ticks = tokio::time::interval(sweep_period(&core));
  ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
  let mut shutdown = core.shutdown.subscribe();
  loop {
    tokio::select! {
      _ = shutdown.wait_for(|stopping| *stopping) => return,
      _ = ticks.tick() => {
        for (definition, key) in core.registry.sweep(core.config.hibernate_after) {
          core.release_claim(definition, &key);
        }
        core.time_out_calls();
        core.end_waiting(false);
      }
    }
  }
}
