//! Timeouts armed only once the future waits.
//!
//! Most handlers answer without waiting on anything, in the first poll of their future. A
//! tokio timer costs each of them a registration and a removal in the runtime's timer wheel
//! for a deadline that could only pass while the future waits: a future that finishes in its
//! first poll never gives a timer the chance to fire. [`at`] polls the future once on its own
//! and arms the timer only when it returns `Pending`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// `future`'s output, or `None` if `deadline` passed first. Like `tokio::time::timeout_at`,
/// except that no timer exists unless `future` has to wait; a future ready when polled
/// returns its output even past the deadline (as `timeout_at` does too).
pub fn at<F: Future>(deadline: Instant, future: F) -> At<F> {
    At {
        future,
        deadline,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`at`]. A type of its own rather than an `async fn`, which would hold
    /// `future` twice (the argument, then the pinned local).
    pub struct At<F> {
        #[pin]
        future: F,
        deadline: Instant,
        // Boxed: it is rare, and held inline it would make every future that awaits this one
        // (a handler's task, which tokio moves whole) a few hundred bytes larger.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for At<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let deadline = *this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_is_answered_even_past_its_deadline() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(at(past, async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_future_is_cut_at_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(500);
        let slow = tokio::time::sleep(Duration::from_secs(10));
        assert_eq!(at(deadline, slow).await, None);
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_future_that_finishes_in_time_is_answered() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let quick = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            "done"
        };
        assert_eq!(at(deadline, quick).await, Some("done"));
    }
}
