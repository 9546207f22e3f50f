//! Cross-core hand-off: one bounded lock-free queue per (sender, receiver) worker pair, so each
//! queue has a single producer and a single consumer and no two workers ever contend on one
//! lock. A receiver is woken through an `AtomicWaker`; a busy receiver (waker not registered)
//! costs a sender only an atomic swap. Cold-path commands use a separate channel per worker;
//! their type `C` belongs to the worker (this module only carries them), so the transport
//! knows nothing of sessions, REST or either product.

use std::sync::Arc;

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use hubmq_core::ids::{GroupId, HubId, WorkerId};
use hubmq_core::message::Message;

/// Messages per queue. Large enough that a worker behind by this much is hopelessly
/// overloaded; past it, messages are dropped and counted rather than blocking the sender.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// Data-path message from one worker to another.
pub enum CoreMsg {
    /// Deliver `msg` to this worker's local subscribers named by `to`.
    Deliver { to: Target, msg: Arc<Message> },
}

/// Which local subscribers a delivered message is for: a Web PubSub group, or the matching
/// subscribers of an Event Grid namespace (with its exact-topic group, if one exists). Packed
/// into two `u32`s so a queue slot stays 16 bytes (the queues are preallocated per worker pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    group: u32,
    hub: u32,
}

const NONE: u32 = u32::MAX;

/// A `Target` unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The members of one group (exact-name routing: Web PubSub groups).
    Group(GroupId),
    /// Every local subscription of a wildcard-routed hub whose filter matches the topic, plus
    /// the members of the topic's exact group if it has one (Event Grid namespaces).
    Topic { hub: HubId, exact: Option<GroupId> },
}

impl Target {
    pub fn group(g: GroupId) -> Target {
        Target {
            group: g.0,
            hub: NONE,
        }
    }

    pub fn topic(hub: HubId, g: Option<GroupId>) -> Target {
        Target {
            group: g.map_or(NONE, |g| g.0),
            hub: hub.0,
        }
    }

    /// Which delivery path the message takes on the receiving worker.
    pub fn route(self) -> Route {
        if self.hub == NONE {
            Route::Group(GroupId(self.group))
        } else {
            Route::Topic {
                hub: HubId(self.hub),
                exact: (self.group != NONE).then_some(GroupId(self.group)),
            }
        }
    }
}

pub struct Mesh<C> {
    workers: usize,
    /// queues[from * workers + to]; the diagonal is unused.
    queues: Vec<ArrayQueue<CoreMsg>>,
    wakers: Vec<AtomicWaker>,
    commands: Vec<(flume::Sender<C>, flume::Receiver<C>)>,
}

impl<C> Mesh<C> {
    pub fn new(workers: usize) -> Mesh<C> {
        let n = workers * workers;
        Mesh {
            workers,
            queues: (0..n)
                .map(|i| {
                    let cap = if i / workers == i % workers {
                        1
                    } else {
                        QUEUE_CAPACITY
                    };
                    ArrayQueue::new(cap)
                })
                .collect(),
            wakers: (0..workers).map(|_| AtomicWaker::new()).collect(),
            commands: (0..workers).map(|_| flume::unbounded()).collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Hands `msg` to worker `to`. Returns the message back if the queue is full.
    #[inline]
    pub fn push(&self, from: WorkerId, to: WorkerId, msg: CoreMsg) -> Result<(), CoreMsg> {
        let q = &self.queues[from.0 as usize * self.workers + to.0 as usize];
        q.push(msg)
    }

    /// Wakes worker `to`'s inbox task (once per batch is enough; extra calls are cheap).
    #[inline]
    pub fn wake(&self, to: WorkerId) {
        self.wakers[to.0 as usize].wake();
    }

    /// Pops up to `max` messages for `me` from every peer, round-robin so no peer starves.
    pub fn drain(&self, me: WorkerId, max: usize, mut f: impl FnMut(CoreMsg)) -> usize {
        let mut n = 0;
        loop {
            let mut progressed = false;
            for from in 0..self.workers {
                if from == me.0 as usize {
                    continue;
                }
                if let Some(m) = self.queues[from * self.workers + me.0 as usize].pop() {
                    f(m);
                    n += 1;
                    progressed = true;
                }
            }
            if !progressed || n >= max {
                return n;
            }
        }
    }

    pub fn has_input(&self, me: WorkerId) -> bool {
        (0..self.workers).any(|from| {
            from != me.0 as usize && !self.queues[from * self.workers + me.0 as usize].is_empty()
        })
    }

    pub fn register(&self, me: WorkerId, waker: &std::task::Waker) {
        self.wakers[me.0 as usize].register(waker);
    }

    pub fn command(&self, to: WorkerId, cmd: C) {
        // The receiver lives as long as the mesh; a send can only fail during teardown.
        let _ = self.commands[to.0 as usize].0.send(cmd);
    }

    pub fn commands(&self, me: WorkerId) -> flume::Receiver<C> {
        self.commands[me.0 as usize].1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_slot_stays_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<CoreMsg>(), 16);
    }

    #[test]
    fn targets_round_trip() {
        assert_eq!(Target::group(GroupId(7)).route(), Route::Group(GroupId(7)));
        assert_eq!(
            Target::topic(HubId(3), Some(GroupId(9))).route(),
            Route::Topic {
                hub: HubId(3),
                exact: Some(GroupId(9))
            }
        );
        assert_eq!(
            Target::topic(HubId(3), None).route(),
            Route::Topic {
                hub: HubId(3),
                exact: None
            }
        );
    }
}
