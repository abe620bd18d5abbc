//! In-process status of this projector's runners, for `/ready` and logs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunnerStatus {
    pub leader: bool,
    pub state: String,
    pub error: Option<String>,
}

/// Shared map from projection name to its runner's status.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<BTreeMap<&'static str, RunnerStatus>>>);

impl StatusBoard {
    pub fn set_leader(&self, name: &'static str, leader: bool) {
        if let Ok(mut m) = self.0.lock() {
            m.entry(name).or_default().leader = leader;
        }
    }

    pub fn set_state(&self, name: &'static str, state: &str, error: Option<String>) {
        if let Ok(mut m) = self.0.lock() {
            metrics::gauge!("pressroom_projection_failed", "projection" => name)
                .set(f64::from(u8::from(state == "failed")));
            let s = m.entry(name).or_default();
            if s.state != state || s.error != error {
                s.state = state.to_string();
                s.error = error;
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, RunnerStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
