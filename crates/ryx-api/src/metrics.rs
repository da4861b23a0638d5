//! `GET /metrics`: Prometheus text, with a reader for the figures in it.

/// A node's `/metrics` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample `name`, labels included as written
    /// (`ryx_neighbors`, `ryx_datagrams_rejected_total{reason="malformed"}`).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The sum of the metric `name` over all its label sets (none when it
    /// is not there).
    pub fn sum(&self, name: &str) -> Option<f64> {
        let mut found = None;
        for l in self.0.lines() {
            let Some(rest) = l.strip_prefix(name) else { continue };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *found.get_or_insert(0.0) += v;
            }
        }
        found
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_sums() {
        let m = Metrics(
            "# HELP x\nryx_neighbors 2\nryx_sent_total{kind=\"ping\"} 3\nryx_sent_total{kind=\"ack\"} 4\nryx_sent_totals 9\n"
                .into(),
        );
        assert_eq!(m.value("ryx_neighbors"), Some(2.0));
        assert_eq!(m.value("ryx_sent_total{kind=\"ack\"}"), Some(4.0));
        assert_eq!(m.sum("ryx_sent_total"), Some(7.0));
        assert_eq!(m.sum("ryx_missing"), None);
        assert_eq!(m.value("ryx_sent"), None);
    }
}
