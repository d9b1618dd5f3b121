//! Run-wide batches: a piece of work (a Kayobe or Ansible run) done once for
//! every host of the run that reached the same point of its step.
//!
//! The [`Batches`] hand out the run's `--parallel` slots: a host takes one
//! to start ([`Batches::start_host`]) and gives it back when it finishes. A
//! host that reaches a [`BatchPoint`] with work joins it and gives its slot
//! back while it waits, so the hosts not started yet start and can join the
//! same batch: with `--parallel 1`, three hosts still make one batch. A host
//! that goes past the point with nothing to do there says so
//! ([`BatchPoint::pass`]). The batch runs once every host of the run is
//! settled: waiting at the point, past it, or finished (blocked or failed
//! before it). After the batch, each host takes a slot again to go on.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    NotStarted,
    Running,
    Finished,
}

/// Where every host of the run stands, and the slots of `--parallel`.
struct Roster {
    hosts: Mutex<BTreeMap<String, Presence>>,
    slots: Arc<Semaphore>,
    /// The slot each running host holds (none while it waits at a batch point).
    held: Mutex<HashMap<String, OwnedSemaphorePermit>>,
    /// Bumped on every change, so waiting hosts look again.
    changed: watch::Sender<u64>,
}

impl Roster {
    fn set(&self, host: &str, presence: Presence) {
        let mut hosts = lock(&self.hosts);
        let current = hosts.entry(host.to_owned()).or_insert(Presence::NotStarted);
        // A host never goes back: a late "running" does not undo "finished".
        if (*current as u8) < (presence as u8) {
            *current = presence;
        }
        drop(hosts);
        self.touch();
    }

    fn touch(&self) {
        self.changed.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Whether every host is settled with respect to a point that holds
    /// `waiting` and that `passed` went past. A host not started yet is not:
    /// hosts waiting at points hold no slot, so it will start.
    fn settled(&self, waiting: &BTreeSet<String>, passed: &BTreeSet<String>) -> bool {
        let hosts = lock(&self.hosts);
        hosts.iter().all(|(host, presence)| match presence {
            Presence::Finished => true,
            Presence::NotStarted | Presence::Running => waiting.contains(host) || passed.contains(host),
        })
    }

    /// Gives the host's slot back; whether it held one.
    fn release(&self, host: &str) -> bool {
        lock(&self.held).remove(host).is_some()
    }

    async fn acquire(&self, host: &str) {
        let permit = self.slots.clone().acquire_owned().await.expect("the slots are never closed");
        lock(&self.held).insert(host.to_owned(), permit);
    }
}

/// The batch points of one run, by name, and where the run's hosts stand.
pub struct Batches {
    roster: Arc<Roster>,
    points: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

impl Batches {
    /// `hosts`: every host of the run; `parallel`: how many run at once.
    pub fn new(hosts: impl IntoIterator<Item = String>, parallel: usize) -> Self {
        let hosts = hosts.into_iter().map(|host| (host, Presence::NotStarted)).collect();
        let roster = Roster {
            hosts: Mutex::new(hosts),
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            held: Mutex::default(),
            changed: watch::channel(0).0,
        };
        Batches { roster: Arc::new(roster), points: Mutex::default() }
    }

    /// Waits for one of the run's slots, then marks the host running.
    pub async fn start_host(&self, host: &str) {
        self.roster.acquire(host).await;
        self.host_started(host);
    }

    /// The host is running its step (without taking a slot: tests, or a caller that limits itself).
    pub fn host_started(&self, host: &str) {
        self.roster.set(host, Presence::Running);
    }

    /// The host's step ended, however it ended; its slot goes to the next host.
    pub fn host_finished(&self, host: &str) {
        self.roster.release(host);
        self.roster.set(host, Presence::Finished);
    }

    /// The point named `name`, made on first use. Every caller of one name
    /// must use the same input and output types.
    pub fn point<I, O>(&self, name: &'static str) -> Arc<BatchPoint<I, O>>
    where
        I: Send + 'static,
        O: Clone + Send + 'static,
    {
        let mut points = lock(&self.points);
        let point = points
            .entry(name)
            .or_insert_with(|| Arc::new(BatchPoint::<I, O>::new(self.roster.clone())) as Arc<dyn Any + Send + Sync>)
            .clone();
        point.downcast::<BatchPoint<I, O>>().unwrap_or_else(|_| panic!("batch point {name} used with other types"))
    }
}

struct PointState<I, O> {
    /// Hosts that joined and wait for the next batch, with what they bring.
    waiting: Vec<(String, I)>,
    /// Hosts past the point: nothing to do there, or their batch ran.
    passed: BTreeSet<String>,
    /// Results of a batch that ran, until each host takes its own.
    results: HashMap<String, Option<O>>,
    batch_running: bool,
}

/// One point of a step where hosts are gathered into batches.
pub struct BatchPoint<I, O> {
    roster: Arc<Roster>,
    state: Mutex<PointState<I, O>>,
}

impl<I: Send + 'static, O: Clone + Send + 'static> BatchPoint<I, O> {
    fn new(roster: Arc<Roster>) -> Self {
        let state =
            PointState { waiting: Vec::new(), passed: BTreeSet::new(), results: HashMap::new(), batch_running: false };
        BatchPoint { roster, state: Mutex::new(state) }
    }

    /// The host goes past this point without joining a batch.
    pub fn pass(&self, host: &str) {
        lock(&self.state).passed.insert(host.to_owned());
        self.roster.set(host, Presence::Running);
    }

    /// Joins the next batch with `input` and waits for it to run. One of the
    /// waiting hosts runs `work` for the whole batch; it returns the result
    /// of each host (`None` for a host it says nothing about).
    pub async fn join<F, Fut>(&self, host: &str, input: I, work: F) -> Option<O>
    where
        F: FnOnce(Vec<(String, I)>) -> Fut,
        Fut: Future<Output = HashMap<String, O>>,
    {
        let mut changes = self.roster.changed.subscribe();
        lock(&self.state).waiting.push((host.to_owned(), input));
        // Waiting takes no slot: the next host starts and may join this batch.
        let had_slot = self.roster.release(host);
        // A host at a point is running, whether or not the manager said so.
        self.roster.set(host, Presence::Running);
        let result = self.wait_for_batch(host, work, &mut changes).await;
        if had_slot {
            self.roster.acquire(host).await;
        }
        result
    }

    async fn wait_for_batch<F, Fut>(&self, host: &str, work: F, changes: &mut watch::Receiver<u64>) -> Option<O>
    where
        F: FnOnce(Vec<(String, I)>) -> Fut,
        Fut: Future<Output = HashMap<String, O>>,
    {
        let mut work = Some(work);
        loop {
            let batch = {
                let mut state = lock(&self.state);
                if let Some(result) = state.results.remove(host) {
                    return result;
                }
                let waiting: BTreeSet<String> = state.waiting.iter().map(|(name, _)| name.clone()).collect();
                let ready = !state.batch_running
                    && state.waiting.iter().any(|(name, _)| name == host)
                    && self.roster.settled(&waiting, &state.passed);
                if ready {
                    state.batch_running = true;
                    let mut batch = std::mem::take(&mut state.waiting);
                    // In name order, whatever order the hosts came in: the same hosts
                    // make the same command, which a re-run recognises.
                    batch.sort_by(|(a, _), (b, _)| a.cmp(b));
                    Some(batch)
                } else {
                    None
                }
            };
            match batch {
                Some(batch) => {
                    let hosts: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
                    let work = work.take().expect("a host leads at most one batch: it leaves with its result");
                    let mut results = work(batch).await;
                    let mut state = lock(&self.state);
                    for name in hosts {
                        let result = results.remove(&name);
                        state.passed.insert(name.clone());
                        state.results.insert(name, result);
                    }
                    state.batch_running = false;
                    drop(state);
                    self.roster.touch();
                }
                None => {
                    // The sender lives as long as the roster this point holds.
                    let _ = changes.changed().await;
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    type Runs = Arc<Mutex<Vec<Vec<String>>>>;

    fn batches(hosts: &[&str], parallel: usize) -> Batches {
        Batches::new(hosts.iter().map(|host| host.to_string()), parallel)
    }

    async fn join(point: &BatchPoint<u32, u32>, host: &str, input: u32, runs: Runs) -> Option<u32> {
        point
            .join(host, input, |batch| async move {
                runs.lock().unwrap().push(batch.iter().map(|(name, _)| name.clone()).collect());
                batch.into_iter().map(|(name, input)| (name, input * 10)).collect()
            })
            .await
    }

    #[tokio::test]
    async fn one_batch_for_every_host_that_reaches_the_point() {
        let batches = batches(&["a", "b", "c", "d"], 4);
        let point = batches.point::<u32, u32>("p");
        let runs: Runs = Arc::default();
        for host in ["a", "b", "c", "d"] {
            batches.host_started(host);
        }
        let (a, b, _, _) = tokio::join!(
            join(&point, "a", 1, runs.clone()),
            join(&point, "b", 2, runs.clone()),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                point.pass("c");
            },
            async {
                tokio::time::sleep(Duration::from_millis(40)).await;
                batches.host_finished("d");
            },
        );
        assert_eq!((a, b), (Some(10), Some(20)));
        assert_eq!(*runs.lock().unwrap(), vec![vec!["a".to_owned(), "b".to_owned()]]);
    }

    /// As the manager drives a host: a slot, the work up to the point, then on.
    async fn host(batches: &Batches, point: &BatchPoint<u32, u32>, host: &str, input: u32, runs: Runs) -> Option<u32> {
        batches.start_host(host).await;
        let result = join(point, host, input, runs).await;
        batches.host_finished(host);
        result
    }

    #[tokio::test]
    async fn one_slot_still_makes_one_batch() {
        // A host waiting at the point gives its slot to the next one.
        let batches = batches(&["a", "b", "c"], 1);
        let point = batches.point::<u32, u32>("p");
        let runs: Runs = Arc::default();
        let (a, b, c) = tokio::join!(
            host(&batches, &point, "a", 1, runs.clone()),
            host(&batches, &point, "b", 2, runs.clone()),
            host(&batches, &point, "c", 3, runs.clone()),
        );
        assert_eq!((a, b, c), (Some(10), Some(20), Some(30)));
        assert_eq!(*runs.lock().unwrap(), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    }

    #[tokio::test]
    async fn after_the_batch_hosts_go_on_one_slot_at_a_time() {
        let batches = Arc::new(batches(&["a", "b"], 1));
        let point = batches.point::<u32, u32>("p");
        let runs: Runs = Arc::default();
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let go = |name: &'static str| {
            let (batches, point, runs, inside, most) =
                (batches.clone(), point.clone(), runs.clone(), inside.clone(), most.clone());
            async move {
                batches.start_host(name).await;
                join(&point, name, 1, runs).await;
                // The rest of the step: never two hosts at once with one slot.
                let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                batches.host_finished(name);
            }
        };
        tokio::join!(go("a"), go("b"));
        assert_eq!(runs.lock().unwrap().len(), 1);
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_free_slot_means_the_next_host_is_about_to_start() {
        let batches = batches(&["a", "b"], 2);
        let point = batches.point::<u32, u32>("p");
        let runs: Runs = Arc::default();
        batches.host_started("a");
        let (a, b) = tokio::join!(join(&point, "a", 1, runs.clone()), async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            batches.host_started("b");
            join(&point, "b", 2, runs.clone()).await
        });
        assert_eq!((a, b), (Some(10), Some(20)));
        assert_eq!(*runs.lock().unwrap(), vec![vec!["a".to_owned(), "b".to_owned()]]);
    }

    #[tokio::test]
    async fn the_manager_need_not_say_when_hosts_start() {
        let batches = batches(&["a", "b"], 2);
        let point = batches.point::<u32, u32>("p");
        let runs: Runs = Arc::default();
        let (a, b) = tokio::join!(join(&point, "a", 1, runs.clone()), join(&point, "b", 2, runs.clone()));
        assert_eq!((a, b), (Some(10), Some(20)));
        assert_eq!(runs.lock().unwrap().len(), 1);
    }
}
