//! Kill sweeps for fault-injection tests: run a command, SIGKILL it after a
//! delay, check what it left; the delays step through the command's measured
//! duration so every phase of it gets a kill.

use std::time::Duration;

/// How many kill points a sweep spreads over a command's duration
/// (`BERTH_FAULT_POINTS`, default 40).
pub fn points() -> usize {
    std::env::var("BERTH_FAULT_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Our SIGKILL ended it.
    Killed,
    /// It exited on its own before the kill (exit code).
    Finished(i32),
}

/// The delays of a sweep: 0, s, 2s, ... with s = d / (points - 1), so the
/// first `points` cover the measured duration `d`; it goes on past `d` until
/// a kill comes after the command has finished (at most 2 × points), so the
/// whole command is covered even when it runs slower than measured.
pub struct Sweep {
    step: Duration,
    n: usize,
    i: usize,
    finished_seen: bool,
}

impl Sweep {
    pub fn new(d: Duration) -> Sweep {
        let n = points().max(2);
        Sweep {
            step: d / (n - 1) as u32,
            n,
            i: 0,
            finished_seen: false,
        }
    }

    /// The next (index, delay), or `None` when the sweep is over.
    pub fn next_delay(&mut self) -> Option<(usize, Duration)> {
        if self.i >= 2 * self.n || (self.i >= self.n && self.finished_seen) {
            return None;
        }
        self.i += 1;
        Some((self.i - 1, self.step * (self.i - 1) as u32))
    }

    /// Tell the sweep how the last kill ended.
    pub fn record(&mut self, end: End) {
        self.finished_seen |= end != End::Killed;
    }
}

/// Print how many kills hit the command and how many came after it ended.
pub fn tally(what: &str, ends: &[End]) {
    let killed = ends.iter().filter(|e| **e == End::Killed).count();
    eprintln!(
        "{what}: {} kills, {killed} hit the command, {} came after it finished",
        ends.len(),
        ends.len() - killed
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_covers_the_duration_then_stops_after_a_finished_run() {
        let mut s = Sweep::new(Duration::from_millis(390));
        let n = points().max(2);
        let mut delays = Vec::new();
        while let Some((i, d)) = s.next_delay() {
            delays.push(d);
            s.record(if i + 1 >= n {
                End::Finished(0)
            } else {
                End::Killed
            });
        }
        assert_eq!(delays.len(), n);
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(*delays.last().unwrap(), Duration::from_millis(390));
    }

    #[test]
    fn sweep_goes_past_the_duration_while_every_kill_hits() {
        let mut s = Sweep::new(Duration::from_millis(100));
        let mut count = 0;
        while s.next_delay().is_some() {
            s.record(End::Killed);
            count += 1;
        }
        assert_eq!(count, 2 * points().max(2));
    }
}
