//! Partial results: what `map` produces and `merge` folds, and their wire form.

use crate::error::ComputeError;
use crate::grep::GrepPartial;
use crate::loganalysis::LogPartial;
use crate::pipeline::PipelinePartial;
use crate::search::{SearchPartial, StatsPartial};
use crate::wordcount::{WcPartial, WcWire};
use crate::{digest_hex, JobKind};
use serde::{Deserialize, Serialize};

/// Version number written in every encoded partial.
pub const PARTIAL_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub(crate) enum PartialData {
    #[serde(rename = "grep")]
    Grep(GrepPartial),
    #[serde(rename = "log-analysis")]
    LogAnalysis(LogPartial),
    #[serde(rename = "word-count")]
    WordCount(WcPartial),
    #[serde(rename = "search-stats")]
    SearchStats(StatsPartial),
    #[serde(rename = "search")]
    Search(SearchPartial),
    #[serde(rename = "pipeline")]
    Pipeline(PipelinePartial),
}

impl PartialData {
    pub(crate) fn kind(&self) -> JobKind {
        match self {
            PartialData::Grep(_) => JobKind::Grep,
            PartialData::LogAnalysis(_) => JobKind::LogAnalysis,
            PartialData::WordCount(_) => JobKind::WordCount,
            PartialData::SearchStats(_) => JobKind::SearchStats,
            PartialData::Search(_) => JobKind::Search,
            PartialData::Pipeline(_) => JobKind::Pipeline,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum PartialWire {
    #[serde(rename = "grep")]
    Grep(GrepPartial),
    #[serde(rename = "log-analysis")]
    LogAnalysis(LogPartial),
    #[serde(rename = "word-count")]
    WordCount(WcWire),
    #[serde(rename = "search-stats")]
    SearchStats(StatsPartial),
    #[serde(rename = "search")]
    Search(SearchPartial),
    #[serde(rename = "pipeline")]
    Pipeline(PipelinePartial),
}

/// The intermediate state of one or more consecutive units of a job.
///
/// Produced by [`JobSpec::map`](crate::JobSpec::map), combined by
/// [`JobSpec::merge`](crate::JobSpec::merge) and turned into the result by
/// [`JobSpec::finish`](crate::JobSpec::finish). It records the kind and the
/// fingerprint of the spec that produced it, so a partial cannot be merged into a job
/// with other parameters. Two partials are equal when their [`to_bytes`](Self::to_bytes)
/// are equal.
#[derive(Clone, Debug)]
pub struct Partial {
    pub(crate) spec: String,
    pub(crate) data: PartialData,
}

#[derive(Serialize)]
struct Envelope<'a> {
    partial: &'a PartialData,
    spec: &'a str,
    v: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeWire {
    partial: PartialWire,
    spec: String,
    v: u32,
}

impl Partial {
    /// Kind of job this partial belongs to.
    pub fn kind(&self) -> JobKind {
        self.data.kind()
    }

    /// Fingerprint of the spec that produced it (see [`JobSpec::fingerprint`](crate::JobSpec::fingerprint)).
    pub fn spec_fingerprint(&self) -> &str {
        &self.spec
    }

    /// Canonical encoding: compact JSON with object keys in sorted order and all
    /// collections in a deterministic order. Equal partials give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let env = Envelope { partial: &self.data, spec: &self.spec, v: PARTIAL_FORMAT_VERSION };
        // Serializing these types cannot fail (no non-string map keys, no custom errors).
        serde_json::to_vec(&env).unwrap_or_default()
    }

    /// Decodes and validates bytes produced by [`to_bytes`](Self::to_bytes). Any
    /// malformed or inconsistent input gives [`ComputeError::BadPartial`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Partial, ComputeError> {
        let env: EnvelopeWire =
            serde_json::from_slice(bytes).map_err(|e| ComputeError::bad(format!("cannot decode: {e}")))?;
        if env.v != PARTIAL_FORMAT_VERSION {
            return Err(ComputeError::bad(format!(
                "unsupported partial format version {} (expected {PARTIAL_FORMAT_VERSION})",
                env.v
            )));
        }
        let data = match env.partial {
            PartialWire::Grep(g) => {
                g.validate()?;
                PartialData::Grep(g)
            }
            PartialWire::LogAnalysis(l) => {
                l.validate()?;
                PartialData::LogAnalysis(l)
            }
            PartialWire::WordCount(w) => PartialData::WordCount(WcPartial::from_wire(w)?),
            PartialWire::SearchStats(x) => PartialData::SearchStats(x),
            PartialWire::Search(x) => PartialData::Search(x),
            PartialWire::Pipeline(x) => {
                x.validate()?;
                PartialData::Pipeline(x)
            }
        };
        Ok(Partial { spec: env.spec, data })
    }

    /// Lowercase hex BLAKE3 digest of [`to_bytes`](Self::to_bytes).
    pub fn digest(&self) -> String {
        digest_hex(&self.to_bytes())
    }
}

impl PartialEq for Partial {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Eq for Partial {}
