//! Progress bars on stderr for downloads and unpacking, drawn only when stderr is a
//! terminal (scripts and logs stay quiet).

use std::io::{IsTerminal, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A set of progress lines redrawn in place; a disabled one does nothing.
#[derive(Clone, Default)]
pub struct Progress {
    state: Option<Arc<Mutex<State>>>,
}

struct State {
    lines: Vec<Line>,
    drawn: usize,
    last_draw: Option<Instant>,
    out: Box<dyn Write + Send>,
}

struct Line {
    label: String,
    phase: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    finished: Option<Instant>,
}

/// One line of a [`Progress`].
#[derive(Clone)]
pub struct Bar {
    state: Option<Arc<Mutex<State>>>,
    index: usize,
}

const REDRAW_EVERY: Duration = Duration::from_millis(100);

impl Progress {
    /// Enabled when stderr is a terminal, unless `BERTH_PROGRESS=0`.
    pub fn stderr() -> Progress {
        let wanted = std::env::var("BERTH_PROGRESS").map_or(true, |v| v != "0");
        if wanted && std::io::stderr().is_terminal() {
            Progress::to(Box::new(std::io::stderr()))
        } else {
            Progress::default()
        }
    }

    /// Draw onto `out` (terminal escape sequences included).
    pub fn to(out: Box<dyn Write + Send>) -> Progress {
        Progress {
            state: Some(Arc::new(Mutex::new(State {
                lines: Vec::new(),
                drawn: 0,
                last_draw: None,
                out,
            }))),
        }
    }

    pub fn enabled(&self) -> bool {
        self.state.is_some()
    }

    /// Add a line for `label` expecting `total` bytes.
    pub fn bar(&self, label: &str, phase: &'static str, total: u64) -> Bar {
        let Some(state) = &self.state else {
            return Bar {
                state: None,
                index: 0,
            };
        };
        let mut st = state.lock().unwrap();
        st.lines.push(Line {
            label: label.to_string(),
            phase,
            total,
            done: 0,
            start: Instant::now(),
            finished: None,
        });
        let index = st.lines.len() - 1;
        st.draw(true);
        Bar {
            state: Some(state.clone()),
            index,
        }
    }
}

impl Bar {
    fn update(&self, force: bool, f: impl FnOnce(&mut Line)) {
        if let Some(state) = &self.state {
            let mut st = state.lock().unwrap();
            f(&mut st.lines[self.index]);
            st.draw(force);
        }
    }

    /// Count `n` more bytes.
    pub fn inc(&self, n: u64) {
        self.update(false, |l| l.done += n);
    }

    /// Start a new phase (e.g. "unpack") counting from zero towards `total`.
    pub fn phase(&self, phase: &'static str, total: u64) {
        self.update(true, |l| {
            l.phase = phase;
            l.total = total;
            l.done = 0;
            l.start = Instant::now();
            l.finished = None;
        });
    }

    /// Mark the line done with a final phase name.
    pub fn finish(&self, phase: &'static str) {
        self.update(true, |l| {
            l.phase = phase;
            l.done = l.total.max(l.done);
            l.finished = Some(Instant::now());
        });
    }

    /// Wrap a reader so that bytes read through it advance this bar.
    pub fn reader<R: Read>(&self, inner: R) -> ProgressReader<R> {
        ProgressReader {
            inner,
            bar: self.clone(),
        }
    }
}

/// Human-readable byte count.
pub fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Line {
    fn render(&self) -> String {
        let end = self.finished.unwrap_or_else(Instant::now);
        let secs = end.duration_since(self.start).as_secs_f64().max(1e-3);
        let pct = if self.total > 0 {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        } else {
            100.0
        };
        let width = 24usize;
        let filled = (pct / 100.0 * width as f64) as usize;
        format!(
            "{:<19} {:<10} [{}{}] {:>10} / {:<10} {:>11}/s",
            self.label,
            self.phase,
            "#".repeat(filled),
            " ".repeat(width - filled),
            human(self.done as f64),
            human(self.total as f64),
            human(self.done as f64 / secs),
        )
    }
}

impl State {
    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW_EVERY)
        {
            return;
        }
        self.last_draw = Some(now);
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &self.lines {
            text.push_str("\r\x1b[2K");
            text.push_str(&l.render());
            text.push('\n');
        }
        self.drawn = self.lines.len();
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }
}

/// A reader that advances a [`Bar`].
pub struct ProgressReader<R> {
    inner: R,
    bar: Bar,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bars_render_and_disabled_progress_is_silent() {
        let out = Shared::default();
        let p = Progress::to(Box::new(out.clone()));
        let bar = p.bar("sha256:0123456789ab", "download", 2048);
        std::io::copy(&mut bar.reader(&[0u8; 2048][..]), &mut std::io::sink()).unwrap();
        bar.finish("done");
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let last = text.rsplit("\r\x1b[2K").next().unwrap();
        assert!(last.contains("done"), "{last:?}");
        assert!(last.contains("2.0 KiB / 2.0 KiB"), "{last:?}");
        assert!(last.contains("/s"), "{last:?}");
        assert!(text.contains("\x1b[1A"), "redraws in place: {text:?}");

        let off = Progress::default();
        assert!(!off.enabled());
        let b = off.bar("x", "download", 10);
        b.inc(5);
        b.finish("done");
        assert_eq!(human(1536.0), "1.5 KiB");
    }
}
