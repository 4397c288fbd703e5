//! The store writer: the one thread that makes writes durable. A caller puts its values
//! into sled (memory) and then asks for a commit; the writer takes every commit asked for
//! while it was busy as one batch and answers them all after one flush (group commit). The
//! flush runs on this thread alone: never on an async worker, never under a caller's lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::StoreError;

/// The most commits answered by one flush: a bound on how long the first waits for others.
const MAX_BATCH: usize = 4096;

/// One commit asked for: the store to flush (a handle on it, held only while the commit is
/// pending, so that a closed store's lock is not kept by the writer) and where the answer
/// goes.
struct Commit {
    store: sled::Tree,
    reply: Reply,
}

/// Where a commit's answer goes.
enum Reply {
    /// An async caller, awaiting without blocking its worker.
    Async(oneshot::Sender<Result<(), StoreError>>),
    /// A thread outside the runtime (the CLI, a blocking task).
    Blocking(mpsc::SyncSender<Result<(), StoreError>>),
}

impl Reply {
    fn send(self, result: Result<(), StoreError>) {
        // A caller that stopped waiting has nothing to be told.
        match self {
            Reply::Async(reply) => drop(reply.send(result)),
            Reply::Blocking(reply) => drop(reply.send(result)),
        }
    }
}

/// How many batches and commits the writer has made, for tests and `/metrics`.
#[derive(Debug, Default)]
pub struct WriterCounts {
    asked: AtomicU64,
    batches: AtomicU64,
    commits: AtomicU64,
}

impl WriterCounts {
    /// Commits asked for.
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }

    /// Flushes made (one per batch).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Commits answered.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// A handle on the writer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    store: sled::Tree,
    requests: mpsc::Sender<Commit>,
    counts: Arc<WriterCounts>,
    /// Held by a test to make the writer wait before it gathers a batch.
    #[cfg(test)]
    pub(super) hold: Arc<std::sync::Mutex<()>>,
}

impl Writer {
    /// Starts the writer thread for `db`.
    pub(super) fn start(db: &sled::Db) -> Result<Self, StoreError> {
        let (requests, queue) = mpsc::channel();
        let counts = Arc::new(WriterCounts::default());
        let writer = Self {
            store: sled::Tree::clone(db),
            requests,
            counts: Arc::clone(&counts),
            #[cfg(test)]
            hold: Arc::default(),
        };
        #[cfg(test)]
        let hold = Arc::clone(&writer.hold);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                run(&queue, &counts, || {
                    #[cfg(test)]
                    drop(hold.lock());
                })
            })
            .map_err(|error| StoreError::Sled(sled::Error::Io(error)))?;
        Ok(writer)
    }

    /// Waits, without blocking the runtime, until every write made before the call is on
    /// disk. Fails closed: a writer that stopped acknowledges nothing.
    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.counts.asked.fetch_add(1, Ordering::Relaxed);
        self.requests
            .send(self.commit_of(Reply::Async(reply)))
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// [`Writer::commit`] for a thread outside the async runtime: blocks that thread.
    pub(super) fn commit_blocking(&self) -> Result<(), StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.counts.asked.fetch_add(1, Ordering::Relaxed);
        self.requests
            .send(self.commit_of(Reply::Blocking(reply)))
            .map_err(|_| StoreError::Stopped)?;
        answer.recv().map_err(|_| StoreError::Stopped)?
    }

    fn commit_of(&self, reply: Reply) -> Commit {
        Commit {
            store: self.store.clone(),
            reply,
        }
    }

    pub(super) fn counts(&self) -> &WriterCounts {
        &self.counts
    }
}

fn run(queue: &mpsc::Receiver<Commit>, counts: &WriterCounts, before_batch: impl Fn()) {
    while let Ok(first) = queue.recv() {
        before_batch();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(reply) => batch.push(reply),
                Err(_) => break,
            }
        }
        let flushed = batch[0].store.flush().map(drop).map_err(StoreError::from);
        if let Err(error) = &flushed {
            tracing::error!(%error, commits = batch.len(), "the store could not flush");
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts
            .commits
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // The store handles go before the answers: a caller told its commit is done may
        // close the store and open it again at once.
        let replies: Vec<Reply> = batch.into_iter().map(|commit| commit.reply).collect();
        for reply in replies {
            reply.send(
                flushed
                    .as_ref()
                    .copied()
                    .map_err(StoreError::clone_for_waiter),
            );
        }
    }
}
