//! Error type shared by every kernel.

use crate::JobKind;

/// Everything that can go wrong while building a job or running its kernels.
///
/// No kernel panics on any input bytes; problems surface as one of these.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The job kind named by the caller is not one of the known kinds.
    #[error(
        "unknown job kind {0:?} (expected one of: word-count, grep, log-analysis, search-stats, search, pipeline)"
    )]
    UnknownKind(String),
    /// The parameters do not fit the job kind (wrong type, out of range, unknown key...).
    #[error("invalid parameters for {kind}: {msg}")]
    InvalidParams {
        /// Kind whose parameters were rejected.
        kind: JobKind,
        /// Human readable explanation.
        msg: String,
    },
    /// A regular expression given in the parameters does not compile.
    #[error("invalid parameters for {kind}: {param} is not a valid regex ({pattern:?}): {reason}")]
    InvalidRegex {
        /// Kind whose parameters were rejected.
        kind: JobKind,
        /// Name of the parameter holding the regex (e.g. `pattern`, `masks[2]`).
        param: String,
        /// The offending pattern.
        pattern: String,
        /// The regex compiler's explanation.
        reason: String,
    },
    /// A partial of one kind was handed to a job of another kind.
    #[error("partial kind mismatch: job is {expected} but partial is {found}")]
    KindMismatch {
        /// Kind of the job.
        expected: JobKind,
        /// Kind recorded in the partial.
        found: JobKind,
    },
    /// A partial produced under different parameters was handed to this job.
    #[error("partial was produced by a different job spec (fingerprint {found}, expected {expected})")]
    SpecMismatch {
        /// Fingerprint of this job's spec.
        expected: String,
        /// Fingerprint recorded in the partial.
        found: String,
    },
    /// `JobSpec::kind` disagrees with the variant of `JobSpec::params`.
    #[error("job spec is inconsistent: kind is {kind} but params are for {params}")]
    InconsistentSpec {
        /// The `kind` field.
        kind: JobKind,
        /// The kind the params belong to.
        params: JobKind,
    },
    /// Partial bytes could not be decoded or violate an invariant.
    #[error("malformed partial: {0}")]
    BadPartial(String),
    /// A counter or index would overflow its representation.
    #[error("overflow: {0}")]
    Overflow(&'static str),
    /// The search library failed on a unit's documents.
    #[error("search index: {0}")]
    Search(String),
    /// A worker thread of `run_local` panicked (a bug; kernels are not meant to panic).
    #[error("a worker thread panicked")]
    WorkerPanic,
}

impl ComputeError {
    pub(crate) fn params(kind: JobKind, msg: impl Into<String>) -> Self {
        ComputeError::InvalidParams { kind, msg: msg.into() }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        ComputeError::BadPartial(msg.into())
    }
}
