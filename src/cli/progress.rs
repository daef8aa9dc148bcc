//! A progress line on a terminal's stderr, shown only once work has taken
//! more than a second, so quick runs and scripts see nothing.

use std::io::Write;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_secs(1);
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    prog: String,
    label: &'static str,
    total: usize,
    start: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// `enabled` is normally "stderr is a terminal".
    pub fn new(prog: &str, label: &'static str, total: usize, enabled: bool) -> Self {
        Progress {
            prog: prog.to_string(),
            label,
            total,
            start: Instant::now(),
            last_draw: None,
            enabled,
        }
    }

    /// For work whose size is known only once it has started.
    pub fn set_total(&mut self, total: usize) {
        self.total = total;
    }

    pub fn update(&mut self, done: usize) {
        if !self.enabled || self.start.elapsed() < DELAY {
            return;
        }
        if self.last_draw.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r{}: {} {}/{} ({}%)\x1b[K",
            self.prog, self.label, done, self.total, pct
        );
        let _ = e.flush();
    }

    /// Clear the line if anything was drawn.
    pub fn finish(&mut self) {
        if self.last_draw.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
