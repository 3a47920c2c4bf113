//! Prometheus' text format (0.0.4), as `serve`'s and a worker's
//! `/metrics` write it: a metric's header, its samples, a histogram.

use std::fmt::Write as _;

use crate::histogram::Histogram;

/// A histogram's `_bucket`, `_sum` and `_count` samples.
pub(crate) fn histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    histogram: &Histogram,
) {
    let bucket = format!("{name}_bucket");
    let with_le = |le: &str| -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .chain([("le".to_string(), le.to_string())])
            .collect()
    };
    let cumulative = histogram
        .cumulative()
        .map(|(bound, count)| (bound.to_string(), count));
    for (le, count) in cumulative.chain([("+Inf".to_string(), histogram.count)]) {
        let owned = with_le(&le);
        let labels: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sample(out, &bucket, &labels, count as f64);
    }
    sample(out, &format!("{name}_sum"), labels, histogram.sum);
    sample(
        out,
        &format!("{name}_count"),
        labels,
        histogram.count as f64,
    );
}

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line; labels with an empty value are left out.
pub(crate) fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    let labels: Vec<String> = labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}=\"{}\"", escaped(value)))
        .collect();
    if !labels.is_empty() {
        let _ = write!(out, "{{{}}}", labels.join(","));
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format writes it.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_empty_ones_left_out() {
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            &[("tenant", "a\"b\\c\nd"), ("kind", "")],
            2.0,
        );
        assert_eq!(out, "m{tenant=\"a\\\"b\\\\c\\nd\"} 2\n");
    }
}
