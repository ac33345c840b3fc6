//! The hub's budget for placement status writes that carry only details.
//!
//! A placement's status holds an entry per cluster; while only those entries and the progress
//! messages move (its own conditions keep their status and reason), each placement writes it
//! at most every [`super::detail_interval`]. That bounds one placement, not the fleet: at 200
//! placements of 100 clusters rolling out, those writes (each some 150 KB of JSON to merge,
//! validate against the schema and track field ownership of) were a quarter of the hub's CPU
//! (docs/BENCHMARKS.md, fleet scale, eighth session), and at 1,000 placements they would be
//! five times that. The budget bounds them hub-wide: so many cluster entries a second, shared
//! by every placement. A change of a placement's own conditions is not subject to it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Cluster entries a second that detail-only status writes may carry, hub-wide (about 3 MB
/// of status JSON a second); a quiet second's worth may be spent at once.
pub(crate) const DETAIL_ENTRIES_PER_SECOND: f64 = 2_000.0;

/// Each write is given a time of its own (the generic cell rate algorithm): the budget keeps
/// the time at which the entries written so far are paid for; a write may go now when that
/// time has come (a quiet spell brings it back to at most a second before now: what may be
/// spent at once), and otherwise is given that time. Either way the time moves on by what the
/// write carries. A placement asked to wait
/// comes back at its own time and writes then: waiting writes do not all come back at once
/// to find the budget spent again, and a placement of many clusters is not starved by many
/// of few.
pub(crate) struct DetailBudget {
    rate: f64,
    state: parking_lot::Mutex<State>,
}

struct State {
    /// When the entries let through so far are paid for.
    paid: Instant,
    /// The time given to each placement asked to wait, by key.
    given: HashMap<String, Instant>,
}

/// How much a quiet spell saves: as many entries as a second pays for.
const SAVED: Duration = Duration::from_secs(1);

impl DetailBudget {
    /// A budget of `rate` entries a second.
    pub(crate) fn new(rate: f64) -> Self {
        let now = Instant::now();
        Self {
            rate,
            state: parking_lot::Mutex::new(State {
                paid: now.checked_sub(SAVED).unwrap_or(now),
                given: HashMap::new(),
            }),
        }
    }

    /// Whether the placement `key` may write `entries` at `now`; if not, how long until its
    /// time.
    pub(crate) fn take(&self, key: &str, entries: usize, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        if let Some(&at) = state.given.get(key) {
            if at <= now {
                state.given.remove(key);
                return Ok(());
            }
            return Err(at - now);
        }
        let cost = Duration::from_secs_f64(entries as f64 / self.rate);
        let earliest = now.checked_sub(SAVED).unwrap_or(now);
        let at = state.paid.max(earliest);
        state.paid = at + cost;
        if at <= now {
            return Ok(());
        }
        if state.given.len() > 4096 {
            // Placements given a time that never came back (deleted, or written for a change
            // of their conditions meanwhile).
            state
                .given
                .retain(|_, t| now.saturating_duration_since(*t) < SAVED * 60);
        }
        state.given.insert(key.to_string(), at);
        Err(at - now)
    }
}

impl Default for DetailBudget {
    fn default() -> Self {
        Self::new(DETAIL_ENTRIES_PER_SECOND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_go_while_paid_for_then_each_is_given_a_time_of_its_own() {
        // Rates and sizes whose times are exact in binary.
        let budget = DetailBudget::new(128.0);
        let t0 = Instant::now() + Duration::from_secs(10);
        let ms = |m: f64| Duration::from_secs_f64(m / 1000.0);
        // A quiet second's worth goes at once: 64 + 96 entries, the second going beyond it.
        assert_eq!(budget.take("a", 64, t0), Ok(()));
        assert_eq!(budget.take("b", 96, t0), Ok(()));
        // 32 entries beyond a second's worth at 128 a second: c's time is 0.25 s on; d's
        // follows c's 64 entries.
        assert_eq!(budget.take("c", 64, t0), Err(ms(250.0)));
        assert_eq!(budget.take("d", 16, t0), Err(ms(750.0)));
        // Asking again before its time changes nothing; at its time it goes.
        assert_eq!(budget.take("c", 64, t0 + ms(125.0)), Err(ms(125.0)));
        assert_eq!(budget.take("c", 64, t0 + ms(250.0)), Ok(()));
        assert_eq!(budget.take("d", 16, t0 + ms(750.0)), Ok(()));
        // A quiet spell saves one second's worth: then the time is now, and the next waits.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(budget.take("e", 128, later), Ok(()));
        assert_eq!(budget.take("f", 1, later), Ok(()));
        assert_eq!(budget.take("g", 1, later), Err(ms(1000.0 / 128.0)));
    }
}
