//! Backoff after failures, shared by the heartbeat and the work applier: exponential with a
//! ceiling and jitter (so a fleet's agents, failing together when their hub or member is down,
//! do not retry together), the longest wait at once for rejected credentials, and at least what
//! the server asks for when it answers 429 Too Many Requests.

use std::time::Duration;

/// What kind of failure a wait follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server rejected the credentials (401, 403): retrying soon cannot help.
    Credentials,
    /// 429 Too Many Requests, with the server's `retryAfterSeconds` if it gave one.
    Throttled(Option<u64>),
    /// Anything else (unreachable, 5xx, a conflict ...).
    Other,
}

/// The kind of failure of a Kubernetes API error.
pub fn failure_of(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => Failure::Credentials,
        kube::Error::Api(s) if s.code == 429 => Failure::Throttled(
            s.details
                .as_ref()
                .map(|d| u64::from(d.retry_after_seconds))
                .filter(|s| *s > 0),
        ),
        _ => Failure::Other,
    }
}

/// Exponential backoff between `min` and `max`, jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    jitter: f64,
    factor: f64,
}

impl Backoff {
    /// Starts at `min`, doubles after each failure up to `max`; each wait is jittered by
    /// ±`jitter` (a fraction, e.g. 0.2).
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            next: min,
            min,
            max,
            jitter: jitter.clamp(0.0, 0.9),
            factor: 2.0,
        }
    }

    /// The same, each wait `factor` times the last (at least 1), not twice.
    pub fn growing_by(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The wait after a failure of kind `f`.
    pub fn fail(&mut self, f: Failure) -> Duration {
        let base = match f {
            Failure::Credentials => self.max,
            Failure::Throttled(after) => self.next.max(Duration::from_secs(after.unwrap_or(1))),
            Failure::Other => self.next,
        };
        self.next = self.next.mul_f64(self.factor).min(self.max);
        let factor = if self.jitter > 0.0 {
            rand::random_range(1.0 - self.jitter..1.0 + self.jitter)
        } else {
            1.0
        };
        let wait = base.mul_f64(factor);
        // Jitter never goes past the ceiling, except to honour a server's Retry-After.
        match f {
            Failure::Throttled(Some(after)) => wait.max(Duration::from_secs(after)),
            _ => wait.min(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_credential_errors_wait_longest() {
        let mut b = Backoff::new(S(1), S(60), 0.0);
        assert_eq!(b.fail(Failure::Other), S(1));
        assert_eq!(b.fail(Failure::Other), S(2));
        assert_eq!(b.fail(Failure::Credentials), S(60));
        b.reset();
        assert_eq!(b.fail(Failure::Other), S(1));
        for _ in 0..20 {
            b.fail(Failure::Other);
        }
        assert_eq!(b.fail(Failure::Other), S(60));
    }

    #[test]
    fn a_backoff_may_grow_by_another_factor() {
        let mut b = Backoff::new(S(10), S(30), 0.0).growing_by(1.5);
        let waits: Vec<Duration> = (0..5).map(|_| b.fail(Failure::Other)).collect();
        assert_eq!(
            waits,
            [S(10), S(15), Duration::from_millis(22_500), S(30), S(30)]
        );
        b.reset();
        assert_eq!(b.fail(Failure::Other), S(10));
    }

    #[test]
    fn throttling_waits_at_least_what_the_server_asks() {
        let mut b = Backoff::new(S(1), S(60), 0.0);
        assert_eq!(b.fail(Failure::Throttled(Some(7))), S(7));
        // Without Retry-After: the backoff's own wait (now 2 s).
        assert_eq!(b.fail(Failure::Throttled(None)), S(2));
        // A Retry-After beyond the ceiling is honoured.
        assert_eq!(b.fail(Failure::Throttled(Some(120))), S(120));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_the_ceiling() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut b = Backoff::new(S(10), S(12), 0.2);
            let w = b.fail(Failure::Other);
            assert!(w >= S(8) && w <= S(12), "{w:?}");
            seen.insert(w.as_millis());
        }
        assert!(seen.len() > 10, "no jitter: {seen:?}");
    }

    #[test]
    fn errors_are_classified_by_status() {
        let api = |code: u16, retry: u32| {
            let status: kube::core::Status = serde_json::from_value(serde_json::json!({
                "code": code, "details": {"retryAfterSeconds": retry}
            }))
            .unwrap();
            kube::Error::Api(Box::new(status))
        };
        assert_eq!(failure_of(&api(401, 0)), Failure::Credentials);
        assert_eq!(failure_of(&api(403, 0)), Failure::Credentials);
        assert_eq!(failure_of(&api(429, 3)), Failure::Throttled(Some(3)));
        assert_eq!(failure_of(&api(429, 0)), Failure::Throttled(None));
        assert_eq!(failure_of(&api(500, 0)), Failure::Other);
        assert_eq!(failure_of(&api(409, 0)), Failure::Other);
    }
}
