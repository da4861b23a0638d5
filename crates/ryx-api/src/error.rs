//! Errors: the JSON body every API error has, its stable codes, and the
//! error a [`Client`](crate::Client) call returns.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// The stable code of an API error (`{"error":{"code",...}}`):
        /// match on it; the message is for humans and may change.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version of the API does not know.
            Other(String),
        }

        impl ErrorCode {
            /// The code as it is on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Other(s) => s,
                }
            }

            /// The code named `s` (unknown codes are kept as [`ErrorCode::Other`]).
            pub fn parse(s: &str) -> ErrorCode {
                match s {
                    $($text => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    /// Unknown path; no such info key, blob, job or dashboard file here.
    NotFound = "not_found",
    /// The body is not the JSON the endpoint expects.
    BadJson = "bad_json",
    /// The body could not be read.
    BadBody = "bad_body",
    /// A body, upload or sample over its limit.
    TooLarge = "too_large",
    /// An upload with a line longer than the node cuts chunks at.
    LineTooLong = "line_too_long",
    /// An upload stalled between two pieces.
    BodyTimeout = "body_timeout",
    /// The node already receives as many uploads as it takes at once.
    UploadsBusy = "uploads_busy",
    /// The node already serves as many event streams as it takes.
    EventStreamsBusy = "event_streams_busy",
    /// A known path with a method it does not serve.
    MethodNotAllowed = "method_not_allowed",
    /// A well-formed request the node refused (see the message).
    Invalid = "invalid",
    /// Not a blob name (64 lowercase hex digits).
    BadHash = "bad_hash",
    /// Upload energy outside 0..1000.
    BadEnergy = "bad_energy",
    /// Upload copies outside 1..=33, or too long a wait for them.
    BadCopies = "bad_copies",
    /// A sample size that does not parse.
    BadSize = "bad_size",
    /// An identity challenge that is not 16 to 64 lowercase hex digits.
    BadChallenge = "bad_challenge",
    /// A query string that does not parse.
    BadQuery = "bad_query",
    /// An upload whose manifest the node could not keep.
    BadManifest = "bad_manifest",
    /// A job kind the node does not run.
    UnknownKind = "unknown_kind",
    /// Job parameters invalid for the kind.
    BadParams = "bad_params",
    /// A job without inputs.
    NoInputs = "no_inputs",
    /// A job input held neither on the node it is submitted to nor on the
    /// nearest nodes it asked.
    UnknownInput = "unknown_input",
    /// A job over a dataset no node is known to hold.
    UnknownDataset = "unknown_dataset",
    /// A job over a dataset whose holders could not be reached.
    DatasetUnavailable = "dataset_unavailable",
    /// A job id that is empty, too long or not hex.
    BadId = "bad_id",
    /// A manifest whose chunks are not all held here.
    Incomplete = "incomplete",
    /// A blob kept here in custody for another node's upload.
    KeptForAnother = "kept_for_another",
    /// Cancelling a job that already ended.
    Final = "final",
    /// The upload cannot fit now.
    StoreFull = "store_full",
    /// The job is done but no holder of its result answers.
    ResultUnavailable = "result_unavailable",
    /// One of a search's two jobs failed (see the message).
    SearchFailed = "search_failed",
    /// A search did not finish within its `timeout_ms`.
    SearchTimeout = "search_timeout",
    /// The stored result is not JSON.
    BadResult = "bad_result",
    /// The node failed internally.
    Internal = "internal",
    /// A cancel forwarded to the job's home got no answer.
    HomeUnreachable = "home_unreachable",
    /// The node's event loop is gone (it is shutting down).
    Unavailable = "unavailable",
    /// The node is shutting down.
    Leaving = "leaving",
    /// The node's event loop was made to crash.
    Crashed = "crashed",
    /// A missing or wrong API token.
    Unauthorized = "unauthorized",
    /// Not a read, on the read-only listener.
    ReadOnly = "read_only",
    /// Fault injection on a node that runs without it.
    FaultInjectionDisabled = "fault_injection_disabled",
    /// `/node/{addr}/...` for an address not in the learned topology.
    UnknownNode = "unknown_node",
    /// `/node/{addr}/...` for an address that did not prove to be its node.
    NotMember = "not_member",
    /// A malformed `/node/...` route.
    BadRoute = "bad_route",
    /// A `/node/{addr}/...` address that is not `ip:port`.
    BadAddress = "bad_address",
    /// A `/node/{addr}/...` path outside the node API.
    ForbiddenPath = "forbidden_path",
    /// `/node/{addr}/...`: the target refused the connection.
    NodeUnreachable = "node_unreachable",
    /// `/node/{addr}/...`: the exchange with the target failed.
    BadGateway = "bad_gateway",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ErrorCode::parse(&s))
    }
}

/// The body of every API error: `{"error":{"code","message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong: a stable code and a human message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable: match on it.
    pub code: ErrorCode,
    /// For humans; may change.
    pub message: String,
}

impl ErrorBody {
    /// The body for `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code, message: message.into() } }
    }
}

/// What went wrong in a client call.
#[derive(Debug)]
pub enum ErrorKind {
    /// The node answered with the API's JSON error.
    Api {
        /// HTTP status (4xx or 5xx).
        status: u16,
        /// The stable code.
        code: ErrorCode,
        /// The human message.
        message: String,
    },
    /// A non-2xx answer without the API's error body (a query string the
    /// framework could not parse, a proxy in between).
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// No exchange: the connection failed, timed out, or the answer was
    /// cut or was not HTTP.
    Transport(String),
    /// A 2xx answer that is not the JSON expected.
    Decode(String),
}

/// The error of a [`Client`](crate::Client) call: the request and what went wrong.
#[derive(Debug)]
pub struct Error {
    request: String,
    kind: ErrorKind,
}

impl Error {
    /// An error of `request` (e.g. `GET /v1/status on 127.0.0.1:9001`).
    pub fn new(request: impl Into<String>, kind: ErrorKind) -> Error {
        Error { request: request.into(), kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The request that failed.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// The HTTP status, if the node answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Api { status, .. } | ErrorKind::Status { status, .. } => Some(*status),
            ErrorKind::Transport(_) | ErrorKind::Decode(_) => None,
        }
    }

    /// The API's error code, if the node answered with one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match &self.kind {
            ErrorKind::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the node answered `404 not_found`.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(&ErrorCode::NotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Api { status, code, message } => {
                write!(f, "{}: HTTP {status} {code}: {message}", self.request)
            }
            ErrorKind::Status { status, body } => write!(f, "{}: HTTP {status}: {body}", self.request),
            ErrorKind::Transport(e) => write!(f, "{}: {e}", self.request),
            ErrorKind::Decode(e) => write!(f, "{}: unexpected answer: {e}", self.request),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_round_trip_with_known_and_unknown_codes() {
        let text = r#"{"error":{"code":"not_found","message":"no info item with key \"nope\" here"}}"#;
        let b: ErrorBody = serde_json::from_str(text).expect("body");
        assert_eq!(b.error.code, ErrorCode::NotFound);
        assert_eq!(serde_json::to_string(&b).expect("json"), text);
        let b: ErrorBody = serde_json::from_str(r#"{"error":{"code":"brand_new","message":"m"}}"#).expect("body");
        assert_eq!(b.error.code, ErrorCode::Other("brand_new".into()));
        assert_eq!(ErrorCode::parse("fault_injection_disabled"), ErrorCode::FaultInjectionDisabled);
        assert_eq!(ErrorCode::KeptForAnother.as_str(), "kept_for_another");
    }

    #[test]
    fn errors_say_the_request_status_and_code() {
        let e = Error::new(
            "GET /v1/info/x on 127.0.0.1:1",
            ErrorKind::Api { status: 404, code: ErrorCode::NotFound, message: "no item".into() },
        );
        assert!(e.is_not_found());
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.to_string(), "GET /v1/info/x on 127.0.0.1:1: HTTP 404 not_found: no item");
        let t = Error::new("GET / on x", ErrorKind::Transport("refused".into()));
        assert_eq!((t.status(), t.code()), (None, None));
    }
}
