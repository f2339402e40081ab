//! Metrics and the inspector, as the JS layer reaches them: `server.metrics()` and the actor
//! states JS shows the inspector.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{state, NativeServer};

#[napi]
impl NativeServer {
  /// The Prometheus text exposition of this server's metrics (what `GET /metrics` serves).
  #[napi(catch_unwind)]
  pub fn metrics(&self) -> String {
    self.core.metrics_text()
  }

  /// Whether the inspector is on (JS then shows it actors' states).
  #[napi(catch_unwind)]
  pub fn inspects(&self) -> bool {
    self.core.inspects()
  }

  /// Shows the inspector the state (JSON) of the actor `key` of definition `kind`.
  #[napi(catch_unwind)]
  pub fn show_state(&self, kind: String, key: String, state_json: String) -> Result<bool, String> {
    state::checked_json(&state_json, "state")?;
    Ok(self.core.show_state_named(&kind, &key, &state_json))
  }
}
