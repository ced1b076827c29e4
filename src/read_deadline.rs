//! [`ReadDeadline`]: how long a body's sender may owe data while the body is being read.
//!
//! Three bodies wait on a peer that may stop sending: a signed request body the layer holds to
//! hash, a client's body on its way upstream, and the upstream's response on its way back. Each
//! one's deadline runs only while its reader waits on the sender: time in which the reader did
//! not ask (its own consumer was slow) is not the sender's fault, so the deadline starts afresh
//! at each wait rather than counting from the last data.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A deadline between two reads of a body.
#[derive(Debug)]
pub(crate) struct ReadDeadline {
    timeout: Duration,
    /// Allocated at the first wait only: a body that arrives whole never pays for a timer.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether the last read found nothing, so the timer runs.
    waiting: bool,
}

impl ReadDeadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
            waiting: false,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A read gave data or ended the body: the next wait has the whole deadline again.
    pub(crate) fn progressed(&mut self) {
        self.waiting = false;
    }

    /// A read found nothing: ready once the sender has owed data for the whole deadline.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + self.timeout;
        let sleep = match self.sleep.as_mut() {
            Some(sleep) => {
                if !self.waiting {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(deadline: &mut ReadDeadline) -> Poll<()> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        deadline.poll_expired(&mut cx)
    }

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_a_whole_deadline_of_waiting() {
        let mut d = ReadDeadline::new(Duration::from_secs(10));
        assert!(poll(&mut d).is_pending());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(poll(&mut d).is_pending(), "the wait has lasted 9 s of 10");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(poll(&mut d).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn data_starts_the_next_wait_afresh() {
        let mut d = ReadDeadline::new(Duration::from_secs(10));
        assert!(poll(&mut d).is_pending());
        tokio::time::advance(Duration::from_secs(9)).await;
        d.progressed();
        // The reader did not ask for 30 s: none of it counts against the sender.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(poll(&mut d).is_pending());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(poll(&mut d).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(poll(&mut d).is_ready());
    }
}
