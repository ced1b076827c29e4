//! Reading a Prometheus text exposition, as a scraper would.

#![allow(dead_code, unreachable_pub)]

/// The value of the sample `name` (a full name, labels included) in a Prometheus text.
pub(crate) fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
