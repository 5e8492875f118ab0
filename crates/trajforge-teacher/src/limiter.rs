//! A cap on teacher requests in flight, shared by every episode of a run.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Async semaphore limiting concurrent HTTP requests to the teacher.
#[derive(Debug)]
pub struct RequestLimiter {
    semaphore: Semaphore,
    capacity: usize,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct RequestPermit<'a> {
    // Option because acquisition only fails on a closed semaphore, which never happens here.
    _permit: Option<SemaphorePermit<'a>>,
}

impl RequestLimiter {
    /// Allow at most `max_in_flight` requests at once (at least 1).
    pub fn new(max_in_flight: usize) -> Self {
        let capacity = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Semaphore::new(capacity),
            capacity,
        }
    }

    /// Wait for a free slot.
    pub async fn acquire(&self) -> RequestPermit<'_> {
        RequestPermit {
            _permit: self.semaphore.acquire().await.ok(),
        }
    }

    /// The configured maximum.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Requests currently holding a slot.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }
}

impl Default for RequestLimiter {
    /// 16 requests in flight: enough to keep one inference server busy.
    fn default() -> Self {
        Self::new(16)
    }
}
