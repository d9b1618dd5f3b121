//! The last look before a change leaves the process. A host's work runs
//! inside its fence (the run's lease on that host), and every write to a
//! service and every command on a host asks the fence first. So a run that
//! was stopped after writing its intent (SIGSTOP, a frozen VM, a suspended
//! laptop) and resumed after another run took the host over sends nothing.
//! The services take no fencing token (Nova's `os-services`, NetBox and Jira
//! accept any write), so this check is the last one there is; what it
//! cannot close is a stop between the check and the system call that sends.

use std::future::Future;
use std::sync::Arc;

/// Whether the work of the current task may still change anything.
pub trait Fence: Send + Sync {
    /// `Err(why)` once it must not.
    fn may_act(&self) -> Result<(), String>;
}

tokio::task_local! {
    static FENCE: Arc<dyn Fence>;
}

/// Runs `work` inside `fence`.
pub async fn within<F: Future>(fence: Arc<dyn Fence>, work: F) -> F::Output {
    FENCE.scope(fence, work).await
}

/// `work` inside the current task's fence, for a task it spawns (a task
/// does not inherit its parent's task-locals).
pub fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let fence = FENCE.try_with(Arc::clone).ok();
    async move {
        match fence {
            Some(fence) => FENCE.scope(fence, work).await,
            None => work.await,
        }
    }
}

/// Asks the current task's fence; work outside any fence may act.
pub fn may_act() -> Result<(), String> {
    FENCE.try_with(|fence| fence.may_act()).unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;

    impl Fence for Closed {
        fn may_act(&self) -> Result<(), String> {
            Err("lease lost".to_owned())
        }
    }

    #[tokio::test]
    async fn a_fence_holds_in_its_task_and_in_the_tasks_it_carries_into() {
        assert_eq!(may_act(), Ok(()), "outside any fence");
        within(Arc::new(Closed), async {
            assert_eq!(may_act(), Err("lease lost".to_owned()));
            let carried = tokio::spawn(carried(async { may_act() })).await.unwrap();
            assert_eq!(carried, Err("lease lost".to_owned()));
            let bare = tokio::spawn(async { may_act() }).await.unwrap();
            assert_eq!(bare, Ok(()), "a plain spawn leaves the fence behind");
        })
        .await;
    }
}
