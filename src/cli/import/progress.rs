//! How far an import has come, on stderr: a bar with counts, rate and ETA on a terminal, and
//! plain lines (at most one a second, and a last one) when stderr is a file or a pipe, so that
//! a log of the run stays readable.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The least time between two plain lines.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// Apps done out of the source's total, and their AppCodes.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: AtomicU64,
    apps: AtomicU64,
    codes: AtomicU64,
    started: Instant,
    /// When the last plain line was written.
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    /// A bar when `terminal`, else plain lines.
    pub(crate) fn new(terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} apps, {msg} ({per_sec}, ETA {eta})",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message("0 AppCodes");
            bar
        });
        Self {
            bar,
            total: AtomicU64::new(0),
            apps: AtomicU64::new(0),
            codes: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(None),
        }
    }

    /// The apps the source holds, as its first page says.
    pub(crate) fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// One app done, with `codes` AppCodes.
    pub(crate) fn app_done(&self, codes: u64) {
        self.apps.fetch_add(1, Ordering::Relaxed);
        let codes = self.codes.fetch_add(codes, Ordering::Relaxed) + codes;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{codes} AppCodes"));
                bar.inc(1);
            }
            None => self.line(false),
        }
    }

    /// The end: the bar is cleared (the summary follows), or the last line written when
    /// `last_line`.
    pub(crate) fn finish(&self, last_line: bool) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if last_line => self.line(true),
            None => {}
        }
    }

    /// `import: 250/1000 apps, 1250 AppCodes, 312 apps/s, ETA 2 s`, unless one was written
    /// less than [`LINE_EVERY`] ago (`last` writes anyway).
    fn line(&self, last: bool) {
        let now = Instant::now();
        {
            let mut at = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
            let due = at.is_none_or(|t| now.duration_since(t) >= LINE_EVERY);
            if !last && !due {
                return;
            }
            *at = Some(now);
        }
        let apps = self.apps.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(apps);
        let codes = self.codes.load(Ordering::Relaxed);
        let rate = apps as f64 / now.duration_since(self.started).as_secs_f64().max(0.001);
        let eta = match rate > 0.0 {
            true => format!("{:.0} s", (total - apps) as f64 / rate),
            false => "unknown".into(),
        };
        // A failed write to stderr is not worth failing the import for.
        let _ = writeln!(
            std::io::stderr(),
            "import: {apps}/{total} apps, {codes} AppCodes, {rate:.0} apps/s, ETA {eta}"
        );
    }
}
