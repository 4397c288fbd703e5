//! How the gateway's long-lived tasks stop. Each service runs until its token is cancelled,
//! keeps the tasks it spawns in a `JoinSet`, and on the way out gives them a bounded time to
//! finish before aborting what is left. A stop waits that time and a margin
//! ([`STOP_GRACE`]) for the service itself; only then is it aborted.

use std::future::Future;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long a stopping service, and the tasks it spawned, may take to finish.
pub const DRAIN: Duration = Duration::from_secs(3);

/// How long a stop waits for a service: its own drain, and a margin to finish after it.
pub const STOP_GRACE: Duration = Duration::from_secs(DRAIN.as_secs() + 1);

/// A service's task and the token that tells it to stop.
pub struct ServiceTask {
    name: &'static str,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl ServiceTask {
    /// Runs `run`, given a token that is cancelled when the service is to stop.
    pub fn spawn<F>(name: &'static str, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(cancel.clone()));
        Self {
            name,
            cancel,
            handle,
        }
    }

    /// Tells the service to stop and waits up to [`STOP_GRACE`] for it; aborts it after
    /// that.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if tokio::time::timeout(STOP_GRACE, &mut self.handle)
            .await
            .is_err()
        {
            tracing::warn!(service = self.name, "did not stop in time: aborted");
            self.handle.abort();
            let _ = (&mut self.handle).await;
        }
    }
}

impl Drop for ServiceTask {
    /// A service dropped without [`ServiceTask::stop`] (a test's early return) still ends.
    fn drop(&mut self) {
        self.cancel.cancel();
        self.handle.abort();
    }
}

/// Waits up to [`DRAIN`] for a service's spawned tasks to finish, then aborts the rest.
pub async fn drain(tasks: &mut JoinSet<()>) {
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, all).await.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "tasks still running after the drain: aborted"
        );
        tasks.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_service_finishes_its_work_and_its_tasks_drain() {
        let (done_sender, mut done) = tokio::sync::mpsc::channel(4);
        let service = ServiceTask::spawn("test", |cancel| async move {
            let mut tasks = JoinSet::new();
            let sender = done_sender.clone();
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = sender.send("task").await;
            });
            cancel.cancelled().await;
            drain(&mut tasks).await;
            let _ = done_sender.send("service").await;
        });
        service.stop().await;
        assert_eq!(done.recv().await, Some("task"));
        assert_eq!(done.recv().await, Some("service"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_ignores_its_token_is_aborted_after_the_drain() {
        // Works on and never looks at its token.
        let service = ServiceTask::spawn("deaf", |_| async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let started = tokio::time::Instant::now();
        service.stop().await;
        assert!(started.elapsed() >= STOP_GRACE);
    }
}
