//! What an import did, item by item and in sums: the plan of a dry run, the differences and
//! failures of a real one, and the summary table at the end. Items are named by their IDs and
//! names, never by a value.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::sync::Outcome;
use crate::cli::client::CliError;
use crate::cli::output::{header, table};

/// The kinds of item an import copies, in the summary's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    AppQuota,
    App,
    AppCode,
    AppAcl,
    QuotaBinding,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::AppQuota,
        Kind::App,
        Kind::AppCode,
        Kind::AppAcl,
        Kind::QuotaBinding,
    ];

    fn plural(self) -> &'static str {
        match self {
            Kind::AppQuota => "app quotas",
            Kind::App => "apps",
            Kind::AppCode => "AppCodes",
            Kind::AppAcl => "app ACLs",
            Kind::QuotaBinding => "quota bindings",
        }
    }
}

/// Counts per outcome: created, skipped, differing, updated, failed.
type Counts = [u64; 5];

/// The report of one run, shared by its tasks.
#[derive(Debug)]
pub(crate) struct Report {
    dry_run: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    counts: [Counts; 5],
    /// One line per item that is not plainly skipped (or created, outside a dry run).
    lines: Vec<String>,
}

impl Report {
    pub(crate) fn new(dry_run: bool) -> Self {
        Self {
            dry_run,
            inner: Mutex::default(),
        }
    }

    /// Counts `outcome` for the item `subject` (its kind and IDs, e.g. "AppCode C of app A").
    pub(crate) fn record(&self, kind: Kind, subject: &str, outcome: &Outcome) {
        let (column, line) = match outcome {
            Outcome::Created => (0, self.dry_run.then(|| format!("create {subject}"))),
            Outcome::Skipped => (1, None),
            Outcome::Differs(fields) => {
                (2, Some(format!("differs {subject}: {}", fields.join(", "))))
            }
            Outcome::Updated(fields) => {
                let verb = if self.dry_run { "update" } else { "updated" };
                (3, Some(format!("{verb} {subject}: {}", fields.join(", "))))
            }
            Outcome::Failed(reason) => (4, Some(format!("failed {subject}: {reason}"))),
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counts[kind as usize][column] += 1;
        inner.lines.extend(line);
    }

    /// Whether no item was counted yet.
    pub(crate) fn is_empty(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counts.iter().flatten().all(|&n| n == 0)
    }

    /// How many items failed.
    pub(crate) fn failed(&self) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counts.iter().map(|c| c[4]).sum()
    }

    /// The item lines (sorted, so that runs compare), then the summary table and the rate.
    pub(crate) fn print(&self, out: &mut impl Write, elapsed: Duration) -> Result<(), CliError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.lines.sort_unstable();
        for line in &inner.lines {
            writeln!(out, "{line}").map_err(CliError::Io)?;
        }
        if !inner.lines.is_empty() {
            writeln!(out).map_err(CliError::Io)?;
        }
        let names: &[&str] = if self.dry_run {
            &[
                "",
                "TO CREATE",
                "SKIPPED",
                "DIFFERING",
                "TO UPDATE",
                "FAILED",
            ]
        } else {
            &["", "CREATED", "SKIPPED", "DIFFERING", "UPDATED", "FAILED"]
        };
        let mut rows = vec![header(names)];
        for kind in Kind::ALL {
            let mut row = vec![kind.plural().to_owned()];
            row.extend(inner.counts[kind as usize].iter().map(u64::to_string));
            rows.push(row);
        }
        table(out, &rows)?;
        let secs = elapsed.as_secs_f64().max(0.001);
        let apps = inner.counts[Kind::App as usize].iter().sum::<u64>();
        let codes = inner.counts[Kind::AppCode as usize].iter().sum::<u64>();
        writeln!(
            out,
            "{apps} apps and {codes} AppCodes in {secs:.1} s: {:.0} apps/s, {:.0} AppCodes/s",
            apps as f64 / secs,
            codes as f64 / secs
        )
        .map_err(CliError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_lists_its_plan_and_a_real_run_its_exceptions() {
        let plan = Report::new(true);
        plan.record(Kind::App, "app a1 (shop)", &Outcome::Created);
        plan.record(Kind::AppCode, "AppCode c1 of app a1", &Outcome::Skipped);
        let mut out = Vec::new();
        plan.print(&mut out, Duration::from_secs(1)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("create app a1 (shop)\n"), "{text}");
        assert!(text.contains("TO CREATE"), "{text}");

        let run = Report::new(false);
        run.record(Kind::App, "app a1 (shop)", &Outcome::Created);
        run.record(
            Kind::App,
            "app a2 (depot)",
            &Outcome::Differs(vec!["remark"]),
        );
        run.record(
            Kind::AppCode,
            "AppCode c1 of app a1",
            &Outcome::Failed("no".into()),
        );
        let mut out = Vec::new();
        run.print(&mut out, Duration::from_secs(1)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("a1 (shop)"), "{text}");
        assert!(text.contains("differs app a2 (depot): remark"), "{text}");
        assert!(text.contains("failed AppCode c1 of app a1: no"), "{text}");
        assert_eq!(run.failed(), 1);
    }
}
