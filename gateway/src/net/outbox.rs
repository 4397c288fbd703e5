//! The swarm task's way out: an event goes to its consumer without the swarm task ever
//! waiting for it. A full channel first fills a short backlog, drained as the consumer
//! catches up; past that the event is given back, and the caller fails closed (ignores the
//! message, drops the request, hangs up on the peer).

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TrySendError};

/// Events held back at most, past the channel's own depth.
const BACKLOG: usize = 4096;

/// What became of an event offered.
pub(super) enum Offer<T> {
    /// Sent, or kept in the backlog.
    Taken,
    /// Channel and backlog are full: the event, given back.
    Refused(T),
    /// The consumer is gone.
    Closed,
}

/// One consumer's channel and the events waiting for room in it.
pub(super) struct Outbox<T> {
    sender: mpsc::Sender<T>,
    backlog: VecDeque<T>,
    /// Whether a refusal was reported since the backlog last emptied.
    warned: bool,
}

impl<T> Outbox<T> {
    /// An outbox in front of `sender`.
    pub(super) fn new(sender: mpsc::Sender<T>) -> Self {
        Self {
            sender,
            backlog: VecDeque::new(),
            warned: false,
        }
    }

    /// Sends `event` at once, or keeps it behind those already waiting; `must` events (whose
    /// loss would leave the consumer's state wrong, like a disconnection) are kept whatever
    /// the backlog holds.
    pub(super) fn offer(&mut self, event: T, must: bool) -> Offer<T> {
        if self.backlog.is_empty() {
            match self.sender.try_send(event) {
                Ok(()) => return Offer::Taken,
                Err(TrySendError::Closed(_)) => return Offer::Closed,
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_back(event);
                    return Offer::Taken;
                }
            }
        }
        if self.sender.is_closed() {
            return Offer::Closed;
        }
        if self.backlog.len() >= BACKLOG && !must {
            return Offer::Refused(event);
        }
        self.backlog.push_back(event);
        Offer::Taken
    }

    /// Whether a refusal is the first since the consumer last caught up: under overload,
    /// one warning per episode rather than one per refused event.
    pub(super) fn first_refusal(&mut self) -> bool {
        !std::mem::replace(&mut self.warned, true)
    }

    /// Whether events wait for room.
    pub(super) fn backlogged(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Waits for room and moves the oldest waiting event into the channel; `false` once the
    /// consumer is gone. Cancel-safe: the event leaves the backlog only with a permit.
    pub(super) async fn drain_one(&mut self) -> bool {
        match self.sender.reserve().await {
            Ok(permit) => {
                if let Some(event) = self.backlog.pop_front() {
                    permit.send(event);
                }
                self.warned &= !self.backlog.is_empty();
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_consumer_fills_the_backlog_then_events_are_refused_except_musts() {
        let (sender, mut receiver) = mpsc::channel(1);
        let mut outbox = Outbox::new(sender);
        assert!(matches!(outbox.offer(0, false), Offer::Taken));
        for n in 1..=BACKLOG {
            assert!(matches!(outbox.offer(n, false), Offer::Taken));
        }
        assert!(matches!(
            outbox.offer(usize::MAX, false),
            Offer::Refused(usize::MAX)
        ));
        assert!(matches!(outbox.offer(BACKLOG + 1, true), Offer::Taken));
        // The consumer catches up: the backlog drains in order, nothing lost but the refused.
        let mut seen = vec![receiver.recv().await.unwrap()];
        while outbox.backlogged() {
            assert!(outbox.drain_one().await);
            seen.push(receiver.recv().await.unwrap());
        }
        assert_eq!(seen, (0..=BACKLOG + 1).collect::<Vec<_>>());
        drop(receiver);
        assert!(matches!(outbox.offer(7, true), Offer::Closed));
    }
}
