//! Named background jobs. Each watches the shutdown signal and is awaited
//! when the server stops.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Tasks {
    stop: watch::Sender<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            stop: watch::channel(false).0,
            handles: Vec::new(),
        }
    }
}

impl Tasks {
    /// Runs `tick` every `period` until shutdown.
    pub fn every<F, Fut>(&mut self, name: &'static str, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        let handle = tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => tick().await,
                    _ = stop.changed() => break,
                }
            }
            tracing::debug!(task = name, "stopped");
        });
        self.handles.push((name, handle));
    }

    /// Runs `job` until it returns; it is handed a [`Stop`] to watch.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, job: F)
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = job(Stop(self.stop.subscribe()));
        let handle = tokio::spawn(async move {
            fut.await;
            tracing::debug!(task = name, "stopped");
        });
        self.handles.push((name, handle));
    }

    /// Signals every task and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (name, handle) in self.handles {
            if let Err(e) = handle.await {
                tracing::warn!(task = name, error = %e, "task ended badly");
            }
        }
    }
}

/// The shutdown signal as a long-running task sees it.
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once shutdown has begun.
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `period`; false when shutdown began first.
    pub async fn sleep(&mut self, period: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(period) => true,
            _ = self.requested() => false,
        }
    }
}
