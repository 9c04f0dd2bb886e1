//! The emulator's clock: the scenario's `now` at start, moving with real time (unless the
//! scenario freezes it) and shifted by the control API (`advance`, `now`). Tokens are stamped
//! with the wall clock shifted by the same offset, so advancing the clock expires them.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

/// The emulator's clock.
#[derive(Debug, Clone)]
pub struct Clock {
    base: DateTime<Utc>,
    started: Instant,
    frozen: bool,
    offset: Duration,
}

impl Clock {
    /// A clock reading `base` now.
    pub fn new(base: DateTime<Utc>, frozen: bool) -> Clock {
        Clock {
            base,
            started: Instant::now(),
            frozen,
            offset: Duration::zero(),
        }
    }

    fn elapsed(&self) -> Duration {
        if self.frozen {
            Duration::zero()
        } else {
            Duration::from_std(self.started.elapsed()).unwrap_or_else(|_| Duration::zero())
        }
    }

    /// The platform's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.base + self.elapsed() + self.offset
    }

    /// The wall clock, shifted by the control API's changes (for token lifetimes).
    pub fn wall_now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// Moves the clock forward (or back, with a negative duration); `false` (and no change)
    /// when that would leave the representable range.
    pub fn advance(&mut self, by: Duration) -> bool {
        let ok = self.now().checked_add_signed(by).is_some()
            && Utc::now().checked_add_signed(self.offset + by).is_some();
        if ok {
            self.offset += by;
        }
        ok
    }

    /// Sets the platform's time.
    pub fn set(&mut self, now: DateTime<Utc>) -> bool {
        let delta = now - self.now();
        self.advance(delta)
    }
}
