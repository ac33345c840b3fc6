//! A fair work queue for a controller: what is asked for passes in the order it was first
//! asked, each key once however often it is asked while it waits, and never twice at once.
//!
//! kube-runtime's controller takes keys that were asked for during their own pass before any
//! other, and of the keys whose requeue time has come, the latest first. A placement that a
//! stream of Work status changes kept asking for therefore passed again and again, while
//! placements waiting for their first pass waited behind them: 309 of 1,000 never passed in
//! the headline run's seventh attempt (docs/BENCHMARKS.md, fleet scale). Here a key asked for
//! while it passes goes to the back of the line when its pass ends, as does a key whose
//! requeue time has come, so every key waits at most one turn of the others.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// When a key should pass next if nothing asks for it sooner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Next(Option<Duration>);

impl Next {
    /// Pass again after `after`.
    pub(crate) fn after(after: Duration) -> Self {
        Self(Some(after))
    }

    /// Pass again only when asked.
    pub(crate) fn on_change() -> Self {
        Self(None)
    }
}

/// The queue's bookkeeping, without the tasks (see [`run`]).
struct Queue<K> {
    /// Keys to pass, in the order they were asked for.
    ready: VecDeque<K>,
    queued: HashSet<K>,
    running: HashSet<K>,
    /// Asked for while they passed: to the back of the line when the pass ends.
    again: HashSet<K>,
    /// Keys to queue at a time, by that time (and a sequence number: equal times keep the
    /// order they were asked in).
    timers: BTreeMap<(Instant, u64), K>,
    due: HashMap<K, (Instant, u64)>,
    sequence: u64,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Self {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            running: HashSet::new(),
            again: HashSet::new(),
            timers: BTreeMap::new(),
            due: HashMap::new(),
            sequence: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> Queue<K> {
    /// Asks for `key` now: a timer it had is superseded.
    fn add(&mut self, key: K) {
        if self.running.contains(&key) {
            self.again.insert(key);
            return;
        }
        if let Some(at) = self.due.remove(&key) {
            self.timers.remove(&at);
        }
        if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Asks for `key` at `at`, unless it is asked for sooner.
    fn add_at(&mut self, key: K, at: Instant) {
        if self.queued.contains(&key) || self.again.contains(&key) {
            return;
        }
        if let Some(&(earlier, _)) = self.due.get(&key) {
            if earlier <= at {
                return;
            }
            let old = self.due.remove(&key).expect("just read");
            self.timers.remove(&old);
        }
        self.sequence += 1;
        let slot = (at, self.sequence);
        self.timers.insert(slot, key.clone());
        self.due.insert(key, slot);
    }

    /// Queues the keys whose time has come by `now`, earliest first.
    fn release(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.due.remove(&key);
            if self.queued.insert(key.clone()) {
                self.ready.push_back(key);
            }
        }
    }

    /// When the next timer is due.
    fn next_due(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// The key to pass now, marked as passing.
    fn take(&mut self) -> Option<K> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// `key`'s pass ended, asking to pass again as `next` says.
    fn done(&mut self, key: K, next: Next, now: Instant) {
        self.running.remove(&key);
        if self.again.remove(&key) {
            self.add(key);
        } else if let Next(Some(after)) = next {
            self.add_at(key, now + after);
        }
    }
}

/// Passes the keys `asks` asks for through `pass`, at most `at_once` at a time, fairly
/// ([`Queue`]). The passes are polled by this one task, as kube-runtime's controller polls
/// its reconciles: they take one core at a time, and the API server's handlers, on the same
/// runtime, keep the other. (With each pass a task of its own, passes took both cores of the
/// headline run's machine and the API server dropped agents' connections: docs/BENCHMARKS.md,
/// fleet scale, eighth session.) Ends when `asks` ends and the passes under way have ended;
/// dropping it drops them. A pass that panics panics this.
pub(crate) async fn run<K, A, F, P>(asks: A, at_once: usize, pass: F)
where
    K: Clone + Eq + Hash + Send + 'static,
    A: Stream<Item = K>,
    F: Fn(K) -> P,
    P: Future<Output = Next> + Send + 'static,
{
    let mut queue: Queue<K> = Queue::default();
    let mut passes = FuturesUnordered::new();
    let mut asks = std::pin::pin!(asks.fuse());
    let mut asking = true;
    loop {
        queue.release(Instant::now());
        while passes.len() < at_once.max(1) {
            let Some(key) = queue.take() else { break };
            let pass = pass(key.clone());
            passes.push(async move { (key, pass.await) });
        }
        if !asking && passes.is_empty() {
            return;
        }
        let due = queue.next_due();
        tokio::select! {
            ask = asks.next(), if asking => match ask {
                Some(key) => queue.add(key),
                None => asking = false,
            },
            Some((key, next)) = passes.next(), if !passes.is_empty() => {
                queue.done(key, next, Instant::now());
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn drain(q: &mut Queue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| q.take()).collect()
    }

    #[test]
    fn keys_pass_in_the_order_first_asked_once_each() {
        let mut q = Queue::default();
        for k in ["a", "b", "a", "c", "b"] {
            q.add(k);
        }
        assert_eq!(drain(&mut q), ["a", "b", "c"]);
    }

    #[test]
    fn a_key_asked_for_while_it_passes_goes_to_the_back() {
        // The starvation kube-runtime's scheduler showed: "busy" is asked for during each of
        // its passes; "new" waits for its first. With this queue "new" passes next.
        let mut q = Queue::default();
        let now = Instant::now();
        q.add("busy");
        assert_eq!(q.take(), Some("busy"));
        q.add("busy");
        q.add("busy");
        q.add("new");
        assert_eq!(q.take(), Some("new"), "not passing twice at once");
        q.done("busy", Next::on_change(), now);
        assert_eq!(drain(&mut q), ["busy"]);
    }

    #[test]
    fn timers_queue_keys_earliest_first_behind_those_waiting() {
        let mut q = Queue::default();
        let now = Instant::now();
        for (k, ms) in [("late", 30), ("early", 10), ("middle", 20)] {
            q.add(k);
            assert_eq!(q.take(), Some(k));
            q.done(k, Next::after(Duration::from_millis(ms)), now);
        }
        q.add("waiting");
        assert_eq!(q.next_due(), Some(now + Duration::from_millis(10)));
        q.release(now + Duration::from_millis(25));
        assert_eq!(drain(&mut q), ["waiting", "early", "middle"]);
        q.release(now + Duration::from_millis(30));
        assert_eq!(drain(&mut q), ["late"]);
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn asking_now_supersedes_a_timer_and_the_earliest_timer_wins() {
        let mut q = Queue::default();
        let now = Instant::now();
        q.add_at("a", now + Duration::from_secs(5));
        q.add_at("a", now + Duration::from_secs(9));
        q.add_at("a", now + Duration::from_secs(1));
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(1)));
        q.add("a");
        assert_eq!(q.next_due(), None, "the timer went with the ask");
        assert_eq!(drain(&mut q), ["a"]);
        // A key that waits already is not given a timer.
        q.add("b");
        q.add_at("b", now + Duration::from_secs(1));
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn a_pass_asked_again_runs_again_rather_than_at_its_timer() {
        let mut q = Queue::default();
        let now = Instant::now();
        q.add("a");
        q.take();
        q.add("a");
        q.done("a", Next::after(Duration::from_secs(60)), now);
        assert_eq!(q.next_due(), None);
        assert_eq!(drain(&mut q), ["a"]);
    }

    #[tokio::test]
    async fn run_passes_at_most_so_many_at_once_and_requeues() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for k in 0..6u32 {
            tx.send(k).unwrap();
        }
        let (l, b, m) = (log.clone(), busy.clone(), most.clone());
        let runner = tokio::spawn(run(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
            2,
            move |k: u32| {
                let (l, b, m) = (l.clone(), b.clone(), m.clone());
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = b.fetch_add(1, SeqCst) + 1;
                    m.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    b.fetch_sub(1, SeqCst);
                    let mut l = l.lock();
                    l.push(k);
                    // Key 0 asks to pass once more, a tenth of a second later.
                    if k == 0 && l.iter().filter(|&&x| x == 0).count() == 1 {
                        Next::after(Duration::from_millis(100))
                    } else {
                        Next::on_change()
                    }
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(tx);
        runner.await.unwrap();
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
        let log = log.lock().clone();
        assert_eq!(log.len(), 7, "six passes and the requeue: {log:?}");
        assert_eq!(log.last(), Some(&0));
    }

    #[tokio::test]
    #[should_panic(expected = "a pass panicked")]
    async fn a_panicking_pass_panics_the_runner() {
        run(futures::stream::iter([1u8]), 1, |_| async {
            panic!("a pass panicked");
        })
        .await;
    }
}
