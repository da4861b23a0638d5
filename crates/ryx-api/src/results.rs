//! The results of the three job kinds, as `GET /v1/jobs/{id}` inlines them
//! (`JobView::result_as`). They are written by `ryx-compute`'s kernels; a
//! test in `ryx-node` checks that each kernel's output reads into its type.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A `word-count` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordCountResult {
    /// Distinct words.
    pub distinct_words: u64,
    /// The most frequent words and their counts, most frequent first.
    pub top: Vec<(String, u64)>,
    /// Words in all.
    pub total_words: u64,
}

/// A `grep` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrepResult {
    /// Lines read.
    pub lines: u64,
    /// Lines that match.
    pub matching_lines: u64,
    /// The first matching lines.
    pub samples: Vec<String>,
}

/// A `log-analysis` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAnalysisResult {
    /// Lines that look like alerts.
    pub alerts: Alerts,
    /// Without a header layout: the layouts detected, most lines first (at
    /// most five).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<DetectedHeader>,
    /// Lines per log level.
    pub levels: BTreeMap<String, u64>,
    /// With `assign`: each line's template id (0: unparsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_templates: Option<Vec<u64>>,
    /// Lines read.
    pub lines: u64,
    /// The templates found, numbered by first appearance.
    pub templates: Vec<Template>,
    /// Lines the layout did not parse.
    pub unparsed: u64,
}

/// A header layout log analysis detected, and the lines it fits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedHeader {
    /// The layout, e.g. `<Time> <Time> <Level> <Component>: <Content>`.
    pub layout: String,
    /// Lines with it.
    pub lines: u64,
}

/// The alerts of a log analysis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerts {
    /// Alert lines.
    pub count: u64,
    /// The first of them.
    pub samples: Vec<String>,
}

/// A log template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Lines it covers.
    pub count: u64,
    /// Its number, from 1.
    pub id: u64,
    /// The text, variable parts as `<*>`.
    pub template: String,
}
