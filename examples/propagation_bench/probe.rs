//! Stall probes that run beside the nodes, outside them: they tell a stall of the nodes from a
//! stall of the database or of the whole machine.
//!
//! - A database client of its own, on a thread of its own, runs `SELECT 1` every 50 ms on one
//!   kept connection, and once a second on a new connection (as `psql` would).
//! - A thread that sleeps 10 ms at a time records how late it wakes: the scheduler's delay.
//! - The kernel's pressure stall information (`/proc/pressure/{cpu,io}`) is read at both ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One observation: when it started (since the probes did) and how long it took.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) took: Duration,
}

/// Round trips on the kept connection, and on a new connection each.
type DatabaseSamples = (Vec<Sample>, Vec<Sample>);

/// The probes, running until [`Probes::finish`].
pub(crate) struct Probes {
    began: Instant,
    stop: Arc<AtomicBool>,
    database: JoinHandle<Result<DatabaseSamples, String>>,
    clock: JoinHandle<Vec<Sample>>,
    pressure: Option<Pressure>,
}

impl Probes {
    pub(crate) fn start(url: &str) -> Self {
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let database = {
            let (stop, url) = (Arc::clone(&stop), url.to_owned());
            std::thread::spawn(move || database(&url, began, &stop))
        };
        let clock = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || clock(began, &stop))
        };
        Self {
            began,
            stop,
            database,
            clock,
            pressure: Pressure::read(),
        }
    }

    /// When `instant` happened, in the probes' time.
    pub(crate) fn since_start(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.began)
    }

    /// Stops the probes and prints what they saw.
    pub(crate) fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let pressure = Pressure::read().and_then(|now| now.minus(&self.pressure));
        let wall = self.began.elapsed();
        match self.database.join() {
            Ok(Ok((kept, fresh))) => {
                summary("database, SELECT 1 on a kept connection", &kept);
                summary("database, a new connection and SELECT 1", &fresh);
            }
            Ok(Err(e)) => println!("probe: the database probe failed: {e}"),
            Err(_) => println!("probe: the database probe panicked"),
        }
        if let Ok(late) = self.clock.join() {
            summary("scheduler, lateness of a 10 ms sleep", &late);
        }
        if let Some(p) = pressure {
            let share = |us: u64| us as f64 / wall.as_micros() as f64 * 100.0;
            println!(
                "probe: pressure over {:.0} s: cpu some {:.1} %, io some {:.1} %, io full {:.1} % \
                 of the time",
                wall.as_secs_f64(),
                share(p.cpu_some),
                share(p.io_some),
                share(p.io_full)
            );
        }
    }
}

/// Says whether the kernel groups processes by session for scheduling (autogroup). When it
/// does, and PostgreSQL runs on this machine, the database's processes form one group that the
/// kernel can starve for seconds while the nodes and wrk keep both cores busy (BENCHMARKS.md):
/// the probes above then show the database stalling, not the nodes.
pub(crate) fn scheduling_note() {
    let autogroup = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled");
    match autogroup.as_deref().map(str::trim) {
        Ok("1") => println!(
            "note: kernel.sched_autogroup_enabled = 1: a PostgreSQL server on this machine is \
             scheduled as one group against the nodes and wrk, and may stall for seconds \
             under this load (see BENCHMARKS.md)"
        ),
        Ok(other) => println!("note: kernel.sched_autogroup_enabled = {other}"),
        Err(_) => {}
    }
}

/// Prints the worst of `samples` and every one over half a second, with when it began.
pub(crate) fn summary(what: &str, samples: &[Sample]) {
    let Some(worst) = samples.iter().max_by_key(|s| s.took) else {
        println!("probe: {what}: no sample");
        return;
    };
    let mut sorted: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    sorted.sort();
    let p99 = sorted[(sorted.len() * 99).div_ceil(100).clamp(1, sorted.len()) - 1];
    println!(
        "probe: {what}: n={} p99={:.2} ms max={:.2} ms at {:.1} s",
        samples.len(),
        ms(p99),
        ms(worst.took),
        worst.at.as_secs_f64()
    );
    for s in samples
        .iter()
        .filter(|s| s.took > Duration::from_millis(500))
    {
        println!(
            "probe:   {:.0} ms from {:.1} s",
            ms(s.took),
            s.at.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn database(url: &str, began: Instant, stop: &AtomicBool) -> Result<DatabaseSamples, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let kept = connect(url).await?;
        let (mut on_kept, mut on_fresh) = (Vec::new(), Vec::new());
        let mut last_fresh = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            kept.simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            on_kept.push(Sample {
                at: start - began,
                took: start.elapsed(),
            });
            if last_fresh.elapsed() >= Duration::from_secs(1) {
                last_fresh = Instant::now();
                let fresh = connect(url).await?;
                fresh
                    .simple_query("SELECT 1")
                    .await
                    .map_err(|e| e.to_string())?;
                on_fresh.push(Sample {
                    at: last_fresh - began,
                    took: last_fresh.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((on_kept, on_fresh))
    })
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    super::pg_schema::connect(url)
        .await
        .map_err(|e| e.to_string())
}

fn clock(began: Instant, stop: &AtomicBool) -> Vec<Sample> {
    const NAP: Duration = Duration::from_millis(10);
    let mut late = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        std::thread::sleep(NAP);
        late.push(Sample {
            at: start - began,
            took: start.elapsed().saturating_sub(NAP),
        });
    }
    late
}

/// Totals of `/proc/pressure`, in microseconds.
struct Pressure {
    cpu_some: u64,
    io_some: u64,
    io_full: u64,
}

impl Pressure {
    /// `None` where the kernel has no pressure stall information.
    fn read() -> Option<Self> {
        let total = |file: &str, line: &str| -> Option<u64> {
            let text = std::fs::read_to_string(format!("/proc/pressure/{file}")).ok()?;
            let row = text.lines().find(|l| l.starts_with(line))?;
            row.split_whitespace()
                .find_map(|field| field.strip_prefix("total="))?
                .parse()
                .ok()
        };
        Some(Self {
            cpu_some: total("cpu", "some")?,
            io_some: total("io", "some")?,
            io_full: total("io", "full")?,
        })
    }

    fn minus(self, before: &Option<Self>) -> Option<Self> {
        let before = before.as_ref()?;
        Some(Self {
            cpu_some: self.cpu_some - before.cpu_some,
            io_some: self.io_some - before.io_some,
            io_full: self.io_full - before.io_full,
        })
    }
}
