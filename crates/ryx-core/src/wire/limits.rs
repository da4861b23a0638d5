//! Every bound on what a datagram carries, in one place. The decoder
//! refuses a message that exceeds one ([`super::Message::check_bounds`],
//! `out_of_bounds`), and the code that builds a message caps or pages what
//! it sends by the same constant, so an honest sender is never refused.
//! Where a sender sends less than the receiver accepts (to fit a datagram),
//! the sender's page size is named here too, next to the bound it stays
//! under.

// The datagram and items.

/// Largest datagram a node sends or accepts, in bytes.
pub const MAX_DATAGRAM: usize = 16 * 1024;
/// Longest item key (any space), in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest serialized item value, in bytes.
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Most peers in any list carried by one message (`hello_reply`,
/// `join_reply`, `shuffle`, `shuffle_reply`).
pub const MAX_PEERS_PER_MESSAGE: usize = 64;
/// Most items, announcements, item ids or digest entries in one message
/// (`gossip`, `ihave`, `graft`, `sync_digest`, `sync_request`).
pub const MAX_IDS_PER_MESSAGE: usize = 128;
/// Announcements a node puts in one `ihave`, and keys in one
/// `sync_request`: with keys of [`MAX_KEY_LEN`], this many fit
/// [`MAX_DATAGRAM`], where [`MAX_IDS_PER_MESSAGE`] would not.
pub const IDS_PER_PAGE: usize = 32;

// Blobs and custody.

/// Most blobs named in one message (`blob_offer`, `blob_have`,
/// `blob_want`, and both a keep certificate's blobs and the hashes of the
/// `blob_keep` that carries it).
pub const MAX_BLOBS_PER_MESSAGE: usize = 64;
/// Most keepers a `blob_keep` lists, and most copies (`k`) its certificate
/// may ask for: the other keepers a node remembers per blob (as many as it
/// remembers holders, [`crate::blobs::MAX_HOLDERS`]) and itself.
pub const MAX_KEEPERS: usize = crate::blobs::MAX_HOLDERS + 1;
/// Most times a `blob_want` question may be passed on.
pub const MAX_WANT_HOPS: u8 = 4;

// Jobs.

/// Longest job id, in bytes (ids a node creates are 32: the creator's id
/// and a random number, 16 hex digits each).
pub const MAX_JOB_ID_LEN: usize = 64;
/// Largest serialized job parameters, in bytes (a work token and every
/// record page carry them; a submission with more is refused).
pub const MAX_PARAMS_LEN: usize = 4096;
/// Length of a result's token digest (`jobs::token_digest`), in hex digits.
pub const TOKEN_DIGEST_LEN: usize = 32;
/// Most jobs one `load` gives distances to.
pub const MAX_GRADIENT_ENTRIES: usize = 64;
/// Most HTTP addresses of holders of one chunk or partial: a work token's
/// holders, a record page's per unit, a decision's.
pub const MAX_HOLDER_ADDRS: usize = 8;
/// Holder addresses a job record page gives per unit, and a decision per
/// partial (fewer than [`MAX_HOLDER_ADDRS`], so that the largest pages fit
/// a datagram).
pub const PAGE_HOLDER_ADDRS: usize = 3;
/// Held tokens listed in one report page (with [`RESULTS_PER_REPORT`]
/// signed results, a page fits a datagram; see the sizing test).
pub const HOLDING_PER_REPORT: usize = 256;
/// Results (each with its signed vote) in one report page.
pub const RESULTS_PER_REPORT: usize = 20;
/// Units in one job record page (each page carries the job's parameters,
/// up to [`MAX_PARAMS_LEN`], and the creator's appointment).
pub const UNITS_PER_PAGE: usize = 24;
/// Decisions (each with up to [`MAX_VOTES`] votes) in one `job_decided`
/// datagram.
pub const DECISIONS_PER_PAGE: usize = 8;
/// Most heirs of a job (a record page lists them all).
pub const MAX_HEIRS: usize = 8;
/// Most heirs an appointment names.
pub const MAX_APPOINTED: usize = 16;
/// Longest dataset name (a `--source NAME=…`), in bytes; a job record's
/// and summary's dataset tag carries one.
pub const MAX_DATASET_NAME: usize = 64;
/// Most votes a decision carries (a quorum of at most 7 replicas is 4).
pub const MAX_VOTES: usize = 4;

// Query waves.

/// Largest serialized payload of a `query_reply` (a merged top-k list and
/// what names where its hits lie); a subtree whose answer is larger says
/// so (`incomplete`) and the root falls back to a job.
pub const MAX_WAVE_PAYLOAD: usize = 12 * 1024;
/// Longest query kind (a job kind's name).
pub const MAX_WAVE_KIND: usize = 32;
/// Most neighbours a `query` names as asked by its sender already.
pub const MAX_WAVE_SKIP: usize = 32;
/// Longest time a wave may be given, in milliseconds.
pub const MAX_WAVE_BUDGET_MS: u32 = 60_000;

// Aggregates (`agg`).

/// Most keys (means, group means, sketch buckets) an `agg` carries, and a
/// node holds.
pub const MAX_AGG_KEYS: usize = 96;
/// Most metrics whose extremes an `agg` carries, and a node holds.
pub const MAX_AGG_EXTREMES: usize = 24;
/// Most hops a `verdict` travels up the tree.
pub const MAX_VERDICT_HOPS: u8 = 64;
/// Longest aggregate key (a metric, `{label=value}`, `~bucket`).
pub const MAX_AGG_KEY_LEN: usize = 72;

// A sender's page must be within what the receiver accepts.
const _: () = assert!(IDS_PER_PAGE <= MAX_IDS_PER_MESSAGE);
const _: () = assert!(PAGE_HOLDER_ADDRS <= MAX_HOLDER_ADDRS);
/// Largest fan-in of a job's merge tree: a combine step folds at most this
/// many partials, and a home merges at most this many at the end.
pub const MAX_MERGE_FAN_IN: usize = 32;
