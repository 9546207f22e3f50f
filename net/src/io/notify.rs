//! A single-threaded wake-up flag: one task waits, any code on the same worker sets it.
//! Used to wake a connection's writer when output is queued and its reader when the
//! connection must close. Cheaper than a channel: setting it twice before the waiter runs
//! costs nothing extra, which is what batches many deliveries into one write.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct LocalNotify {
    set: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl LocalNotify {
    #[inline]
    pub fn notify(&self) {
        if !self.set.replace(true) {
            if let Some(w) = self.waiter.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Waits until `notify` was called since the last wait returned, then clears the flag.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                *self.waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Yields once to the runtime so other ready tasks (the writers a batch just woke) run first.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
