//! The Grafana dashboard (`deploy/grafana/apig-appcode.json`) and the Prometheus alert rules
//! (`deploy/prometheus/alerts.yml`) against the `/metrics` of a running `apig-appcode serve`:
//! every metric and label they read is one the binary exports, and the dashboard shows every
//! metric it exports, so that neither drifts from the code.
//!
//! The server runs with every optional family on (a verify listener, a rate limit counted in a
//! Redis that does not answer: the fallback and latency families). A family is read from its
//! `# TYPE` line, which the exposition prints even before anything was counted, and its
//! samples' names follow OpenMetrics (`_total` for a counter, `_bucket`/`_sum`/`_count` for a
//! histogram).
//!
//! With `promtool` installed, the rules are also checked (`promtool check rules`) and their unit
//! tests run (`promtool test rules deploy/prometheus/alerts_test.yml`), and the dashboard's
//! expressions are checked as recording rules. Without it the test says so on stderr and skips
//! that part, except under `CI` (set, not empty and not `false`), where a missing `promtool` is a failure
//! (`.ci/run` installs it).
//!
//! Run: `cargo test --features gateway --test dashboards`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "support/installed.rs"]
mod installed;
#[path = "support/binary.rs"]
mod support;
use installed::installed_or_skip;
use support::*;

/// Labels Prometheus adds to every scraped sample: the binary exports neither.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// A metric family of `/metrics`: its type, and the labels (with their values) of its samples.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// What `/metrics` exports: families by name, and which family each series name belongs to.
#[derive(Debug, Default)]
struct Exported {
    families: BTreeMap<String, Family>,
    series: BTreeMap<String, String>,
}

impl Exported {
    fn parse(text: &str) -> Self {
        let mut exported = Self::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, kind) = rest.split_once(' ').expect("a # TYPE line names a type");
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                exported
                    .series
                    .insert(format!("{name}{suffix}"), name.to_owned());
            }
            let family = Family {
                kind: kind.to_owned(),
                labels: BTreeMap::new(),
            };
            exported.families.insert(name.to_owned(), family);
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let series = Selector::parse_sample(line);
            let family = exported
                .series
                .get(&series.metric)
                .unwrap_or_else(|| panic!("sample of no # TYPE family: {line}"));
            let family = exported.families.get_mut(family).unwrap();
            for (label, _, value) in series.matchers {
                family.labels.entry(label).or_default().insert(value);
            }
        }
        exported
    }

    /// Why `selector` (from `source`) reads nothing the binary exports, if it does not.
    fn check(&self, selector: &Selector, source: &str) -> Result<(), String> {
        let family = self.series.get(&selector.metric).ok_or_else(|| {
            format!(
                "{source}: `{}` is not exported by /metrics",
                selector.metric
            )
        })?;
        let family = &self.families[family];
        for (label, op, value) in &selector.matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            let values = family
                .labels
                .get(label)
                .ok_or_else(|| format!("{source}: `{}` has no label `{label}`", selector.metric))?;
            if op == "=" && !values.contains(value) {
                return Err(format!(
                    "{source}: `{}` never has {label}=\"{value}\" (it has {values:?})",
                    selector.metric
                ));
            }
        }
        Ok(())
    }

    /// Why the grouping label `label` (from `source`, whose selectors are `selectors`) is on
    /// none of them, if it is not.
    fn check_grouping(
        &self,
        label: &str,
        selectors: &[Selector],
        source: &str,
    ) -> Result<(), String> {
        let known = TARGET_LABELS.contains(&label)
            || selectors.iter().any(|s| {
                self.series
                    .get(&s.metric)
                    .is_some_and(|f| self.families[f].labels.contains_key(label))
            });
        if known {
            Ok(())
        } else {
            Err(format!(
                "{source}: grouping by `{label}`, a label none of its metrics has"
            ))
        }
    }
}

/// A metric name and its label matchers (`label`, operator, value).
#[derive(Debug, Default)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

impl Selector {
    /// The series of a sample line `name{a="x",b="y"} value`.
    fn parse_sample(line: &str) -> Self {
        let chars: Vec<char> = line.chars().collect();
        let end = chars
            .iter()
            .position(|c| *c == '{' || *c == ' ')
            .expect("a sample has a value");
        let mut selector = Self {
            metric: chars[..end].iter().collect(),
            matchers: Vec::new(),
        };
        if chars[end] == '{' {
            selector.matchers = matchers(&chars, end).0;
        }
        selector
    }
}

/// What a PromQL expression reads: its selectors and the labels it groups by.
#[derive(Debug, Default)]
struct Reads {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

/// Words of PromQL that are neither metrics nor functions.
const KEYWORDS: [&str; 13] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
];

/// PromQL's aggregation operators, which a grouping clause may follow before their `(`.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Reads the metric selectors and grouping labels of a PromQL expression: a small scanner, not
/// a parser, which is enough for the expressions of the files checked here (`promtool` checks
/// their syntax).
fn reads(expr: &str) -> Reads {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Reads::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = string_end(&chars, i);
        } else if c == '[' {
            // A range or subquery: durations and Grafana's `$__rate_interval`.
            i = chars[i..]
                .iter()
                .position(|&c| c == ']')
                .map_or(chars.len(), |n| i + n + 1);
        } else if c == '{' {
            // A selector without a name, `{__name__="..."}`: none is expected here.
            panic!("a selector without a metric name in {expr}");
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration, `1e-9`, `5m`.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ".-+".contains(chars[i]))
            {
                if "-+".contains(chars[i]) && !matches!(chars[i - 1], 'e' | 'E') {
                    break;
                }
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = (i..chars.len()).find(|&j| !chars[j].is_whitespace());
            let next_char = next.map(|j| chars[j]);
            if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                if next_char == Some('(') && !matches!(word.as_str(), "and" | "or" | "unless") {
                    let (labels, end) = label_list(&chars, next.unwrap());
                    if matches!(word.as_str(), "by" | "without") {
                        out.grouping.extend(labels);
                    }
                    i = end;
                }
            } else if next_char == Some('(') || AGGREGATIONS.contains(&word.as_str()) {
                // A function or an aggregation: its arguments are read as the loop goes on.
            } else {
                let mut selector = Selector {
                    metric: word,
                    matchers: Vec::new(),
                };
                if next_char == Some('{') {
                    let (matchers, end) = matchers(&chars, next.unwrap());
                    selector.matchers = matchers;
                    i = end;
                }
                out.selectors.push(selector);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The index after the string literal that opens at `start`.
fn string_end(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The label names of `( a, b )` opening at `open`, and the index after it.
fn label_list(chars: &[char], open: usize) -> (Vec<String>, usize) {
    let close = chars[open..]
        .iter()
        .position(|&c| c == ')')
        .map_or(chars.len(), |n| open + n);
    let text: String = chars[open + 1..close].iter().collect();
    let labels = text
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    (labels, close + 1)
}

/// The matchers of `{a="x", b=~"y"}` opening at `open`, and the index after it.
fn matchers(chars: &[char], open: usize) -> (Vec<(String, String, String)>, usize) {
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        assert!(i < chars.len(), "unclosed selector");
        if chars[i] == '}' {
            return (out, i + 1);
        }
        let start = i;
        while chars[i].is_ascii_alphanumeric() || chars[i] == '_' {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        let op_start = i;
        while "=!~".contains(chars[i]) {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        let end = string_end(chars, i);
        let value: String = chars[i + 1..end - 1].iter().collect();
        out.push((label, op, value));
        i = end;
    }
}

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Every panel's targets and every query variable of the dashboard: (where, expression).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"]
                    .as_str()
                    .expect("every target has a PromQL expr");
                out.push((format!("panel {title:?}"), expr.to_owned()));
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap();
        // `label_values(SELECTOR, LABEL)`: the selector is PromQL, the label one of its own.
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(..): {query}", var["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        out.push((
            format!("variable {}", var["name"]),
            format!("sum by ({}) ({selector})", label.trim()),
        ));
    }
    out
}

/// The `expr` of every rule of a Prometheus rules file, with the rule's name: a one-line value,
/// or a block scalar (`|`, `>`, `>-`) of the lines indented below it. Each `- alert:` must have
/// exactly one, so that a form this reader does not know fails the test rather than hides a
/// rule.
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut alert = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = Some(name.trim().to_owned());
        } else if let Some(value) = trimmed.strip_prefix("expr:") {
            let name = alert.take().expect("an expr outside an alert rule");
            let value = value.trim();
            let expr = if value.starts_with('|') || value.starts_with('>') {
                let indent = line.len() - trimmed.len();
                let mut block = Vec::new();
                while let Some(next) = lines.get(i + 1) {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                block.join(" ")
            } else {
                value.to_owned()
            };
            out.push((name, expr));
        }
        i += 1;
    }
    let alerts = yaml.matches("- alert:").count();
    assert_eq!(out.len(), alerts, "an alert rule whose expr was not read");
    out
}

/// `promtool`, when installed; `None` (after saying so) elsewhere, a failure under CI.
fn promtool() -> Option<PathBuf> {
    installed_or_skip("promtool", &[], "Debian: apt-get install prometheus")
}

fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks every query of `queries` against `exported`; returns the families they read.
fn check_all(exported: &Exported, queries: &[(String, String)]) -> BTreeSet<String> {
    let mut read = BTreeSet::new();
    let mut problems = Vec::new();
    for (source, expr) in queries {
        let reads = reads(expr);
        assert!(!reads.selectors.is_empty(), "{source}: no metric in {expr}");
        for selector in &reads.selectors {
            match exported.check(selector, source) {
                Ok(()) => {
                    read.insert(exported.series[&selector.metric].clone());
                }
                Err(e) => problems.push(e),
            }
        }
        for label in &reads.grouping {
            if let Err(e) = exported.check_grouping(label, &reads.selectors, source) {
                problems.push(e);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alert_rules_read_only_what_serve_exports() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A Redis nobody answers at: the node counts alone, and the store's families are exported.
    let redis = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redis_url = format!("redis://{}/0", redis.local_addr().unwrap());
    drop(redis);
    let extra = [
        "--verify-listen",
        "127.0.0.1:0",
        "--rate-limit",
        "1000/s",
        "--rate-limit-store",
        &redis_url,
    ];
    let server = start_with_token(&upstream, dir.path(), &extra).await;
    let text = metrics(&server).await;
    let exported = Exported::parse(&text);
    for family in [
        "apig_appcode_rate_limit_store_latency_seconds",
        "apig_appcode_quota_count_fallbacks",
    ] {
        assert!(
            exported.families.contains_key(family),
            "{family} missing:\n{text}"
        );
    }
    assert_eq!(
        exported.families["apig_appcode_upstream_latency_seconds"].kind,
        "histogram"
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/apig-appcode.json")).unwrap(),
    )
    .unwrap();
    let queries = dashboard_queries(&dashboard);
    let shown = check_all(&exported, &queries);
    let missing: Vec<_> = exported
        .families
        .keys()
        .filter(|f| !shown.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics the dashboard does not show: {missing:?}"
    );

    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let exprs = rule_exprs(&rules);
    assert!(exprs.len() >= 8, "{exprs:?}");
    check_all(&exported, &exprs);

    let Some(promtool) = promtool() else {
        return;
    };
    let rules_dir = deploy("prometheus");
    run_promtool(&promtool, &["check", "rules", "alerts.yml"], &rules_dir);
    run_promtool(&promtool, &["test", "rules", "alerts_test.yml"], &rules_dir);
    // The dashboard's expressions as recording rules, Grafana's variables given values.
    let mut recording = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        recording.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("dashboard.yml"), recording).unwrap();
    run_promtool(
        &promtool,
        &["check", "rules", "dashboard.yml"],
        scratch.path(),
    );
}

/// Provisioning-ready: no numeric ID to clash with, a fixed UID, and every panel and query on
/// the data source variable rather than a data source of the machine it was made on.
#[test]
fn the_dashboard_asks_for_its_data_source() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/apig-appcode.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard.get("id").is_none_or(Value::is_null));
    assert_eq!(dashboard["uid"], "apig-appcode");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["type"] == "datasource"
        && v["name"] == "datasource"
        && v["query"] == "prometheus"));
    let mut sources = Vec::new();
    fn walk(v: &Value, sources: &mut Vec<Value>) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "datasource" {
                        sources.push(value.clone());
                    } else {
                        walk(value, sources);
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|v| walk(v, sources)),
            _ => {}
        }
    }
    walk(&dashboard["panels"], &mut sources);
    walk(&dashboard["templating"], &mut sources);
    assert!(!sources.is_empty());
    for source in sources {
        assert_eq!(source["uid"], "${datasource}", "{source}");
    }
}

/// Every alert rule says what happened and what to do, and how urgent it is.
#[test]
fn every_alert_rule_has_a_severity_a_summary_and_a_description() {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let blocks: Vec<&str> = rules.split("- alert:").skip(1).collect();
    assert!(!blocks.is_empty());
    for block in blocks {
        let name = block.lines().next().unwrap().trim();
        for key in ["severity:", "summary:", "description:"] {
            assert_eq!(block.matches(key).count(), 1, "{name}: {key}");
        }
    }
}
