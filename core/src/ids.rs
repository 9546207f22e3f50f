//! Id newtypes shared by every layer. Plain integers with a name, so a `GroupId` can never be
//! passed where a `WorkerId` is meant.

/// A worker thread (one core, one runtime). At most 64 workers: interest masks are `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

/// Largest worker count: group interest masks are one `u64`, one bit per worker.
pub const MAX_WORKERS: usize = 64;

/// A group (topic) inside a hub, interned process-wide the first time any worker sees its name.
/// Dense small integers, so per-connection permission bitsets can be indexed by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

/// A hub, interned process-wide on first use (hubs are implicit, as in the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubId(pub u32);

/// A session slot inside one worker. Only meaningful on the worker that owns the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionIdx(pub u32);
