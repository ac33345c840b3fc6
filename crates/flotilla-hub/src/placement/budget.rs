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

use std::time::{Duration, Instant};

/// Cluster entries a second that detail-only status writes may carry, hub-wide (about 3 MB
/// of status JSON a second); as much again may be spent at once after a quiet spell.
pub(crate) const DETAIL_ENTRIES_PER_SECOND: f64 = 2_000.0;

/// A token bucket of cluster entries. A write is let through while the bucket is not empty,
/// and takes what it carries even when that is more than is left: the bucket goes into debt,
/// which the next writes wait out. So a placement of many clusters is not starved by many
/// placements of few, and the long-run rate is the bucket's.
pub(crate) struct DetailBudget {
    rate: f64,
    burst: f64,
    state: parking_lot::Mutex<(f64, Instant)>,
}

impl DetailBudget {
    /// A budget of `rate` entries a second, full.
    pub(crate) fn new(rate: f64) -> Self {
        Self {
            rate,
            burst: rate,
            state: parking_lot::Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes `entries` for a write at `now`, or says how long until one may be let through.
    pub(crate) fn take(&self, entries: usize, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        let (tokens, last) = &mut *state;
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now.max(*last);
        if *tokens > 0.0 {
            *tokens -= entries as f64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(-*tokens / self.rate).max(Duration::from_millis(10)))
        }
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
    fn writes_pass_while_the_bucket_holds_and_then_wait_out_the_debt() {
        let budget = DetailBudget::new(100.0);
        let t0 = Instant::now();
        // A full bucket lets a write of more than it holds through, into debt.
        assert_eq!(budget.take(60, t0), Ok(()));
        assert_eq!(budget.take(60, t0), Ok(()));
        // 20 entries of debt at 100 a second: a fifth of a second.
        assert_eq!(budget.take(1, t0), Err(Duration::from_millis(200)));
        assert!(budget.take(1, t0 + Duration::from_millis(150)).is_err());
        assert_eq!(budget.take(100, t0 + Duration::from_millis(210)), Ok(()));
        // A quiet spell fills the bucket up to one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(budget.take(100, later), Ok(()));
        assert!(budget.take(1, later).is_err());
    }
}
