//! The typed error every outbound WeChat API call returns, and the errcode policy
//! (which codes are retried, which are fatal, which mean "try again later").
//!
//! It also says whether a failed call *may have taken effect*: a definite failure (WeChat
//! answered with an errcode, or the request never left: connection refused, DNS, TLS, connect
//! timeout) did nothing, so sending again cannot duplicate; an ambiguous one
//! ([`ApiError::UnknownOutcome`]: a timeout after the request was sent, a connection lost
//! before the whole answer, an answer that was not WeChat's) may have been delivered, and only
//! a call WeChat deduplicates by an idempotency key may be sent again.

use std::time::Duration;

/// Errcode reported by [`ApiError::errcode`] for a transport failure (no answer from WeChat).
pub const ERRCODE_NETWORK: i64 = -2;
/// Errcode reported for a timeout.
pub const ERRCODE_TIMEOUT: i64 = -3;
/// Errcode reported when WeChat's answer was not the JSON we expected.
pub const ERRCODE_INVALID_JSON: i64 = -4;
/// Errcode reported for a local configuration problem (missing appid/secret, bad base URL).
pub const ERRCODE_CONFIG: i64 = -5;
/// Errcode reported for a non-2xx HTTP status without a WeChat errcode in the body.
pub const ERRCODE_HTTP: i64 = -6;

/// WeChat: "system busy" — retried with backoff.
pub const SYSTEM_BUSY: i64 = -1;
/// WeChat: "api freq out of limit" (too frequent) — retried with backoff.
pub const FREQ_LIMIT: i64 = 45011;
/// WeChat: invalid AppID.
pub const INVALID_APPID: i64 = 40013;
/// WeChat: invalid AppSecret.
pub const INVALID_APPSECRET: i64 = 40125;
/// WeChat: calling IP is not in the console's IP whitelist.
pub const IP_NOT_WHITELISTED: i64 = 40164;
/// WeChat: daily API quota reached.
pub const DAILY_QUOTA: i64 = 45009;
/// WeChat: clientmsgid already used — the original msg_id is returned, so it is a success.
pub const CLIENTMSGID_EXISTS: i64 = 45065;
/// WeChat: same clientmsgid retried too fast — wait a minute.
pub const CLIENTMSGID_TOO_FAST: i64 = 45066;
/// WeChat: invalid credential (access_token invalid or not the latest).
pub const INVALID_CREDENTIAL: i64 = 40001;
/// WeChat: invalid access_token.
pub const INVALID_ACCESS_TOKEN: i64 = 40014;
/// WeChat: access_token expired.
pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;

/// How long WeChat asks us to wait after 45066.
pub const CLIENTMSGID_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why an outbound WeChat API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The call failed for a transient reason and was kept in the outbox, which retries it
    /// until it succeeds or fails for good.
    #[error("{cause} (queued in the outbox for retry)")]
    Queued {
        /// The failure that sent it to the outbox.
        cause: Box<ApiError>,
    },
    /// WeChat answered with a non-zero errcode.
    #[error("WeChat API error {errcode}: {errmsg}")]
    Api {
        /// The errcode from the WeChat documentation.
        errcode: i64,
        /// WeChat's errmsg, verbatim (includes the rid for support tickets).
        errmsg: String,
    },
    /// The AppID/AppSecret/IP whitelist is wrong (40013/40125/40164); nothing works until fixed.
    #[error("WeChat rejected the credentials ({errcode}: {errmsg}); {hint}")]
    Credentials {
        /// 40013, 40125 or 40164.
        errcode: i64,
        /// WeChat's errmsg.
        errmsg: String,
        /// What to fix in the 公众平台 console.
        hint: String,
    },
    /// The daily quota for this API is used up (45009); stop calling it until tomorrow or reset it.
    #[error("WeChat daily API quota exhausted (45009): {errmsg}; calls will fail until the quota resets (or use clear_quota in the console)")]
    QuotaExhausted {
        /// WeChat's errmsg.
        errmsg: String,
    },
    /// WeChat asked us to wait before retrying (45066); the caller decides whether to schedule it.
    #[error("WeChat asks to retry no sooner than {retry_after:?} ({errcode}: {errmsg})")]
    RetryLater {
        /// The errcode (45066).
        errcode: i64,
        /// WeChat's errmsg.
        errmsg: String,
        /// Minimum wait before the same request may be sent again.
        retry_after: Duration,
    },
    /// The request never left: DNS, connection refused, TLS, connect timeout.
    #[error("network error talking to WeChat: {0}")]
    Network(String),
    /// No answer within the client's timeout.
    #[error("timed out waiting for WeChat")]
    Timeout,
    /// The connection broke after the request was sent, before WeChat's whole answer came.
    #[error("connection to WeChat lost before its answer: {0}")]
    ConnectionLost(String),
    /// A request went out and no usable answer came back (`cause`: a timeout, a lost
    /// connection, an answer that was not WeChat's): WeChat may or may not have acted on it.
    #[error("{cause}; the call may have taken effect")]
    UnknownOutcome {
        /// What was seen instead of an answer.
        cause: Box<ApiError>,
    },
    /// A non-2xx HTTP status without a WeChat errcode in the body.
    #[error("WeChat answered HTTP {status}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The body, truncated, for diagnostics.
        body: String,
    },
    /// The body was not the JSON we expected.
    #[error("WeChat answered with invalid JSON ({reason}): {raw}")]
    InvalidJson {
        /// The body, truncated to a few hundred bytes.
        raw: String,
        /// What the parser said.
        reason: String,
    },
    /// A local configuration problem (e.g. no appid/secret configured).
    #[error("WeChat API client misconfigured: {0}")]
    Config(String),
}

impl ApiError {
    /// The WeChat errcode, or one of the negative `ERRCODE_*` constants of this module for
    /// failures that never reached WeChat's logic (network -2, timeout -3, invalid JSON -4,
    /// config -5, HTTP status -6).
    pub fn errcode(&self) -> i64 {
        match self {
            ApiError::Queued { cause } | ApiError::UnknownOutcome { cause } => cause.errcode(),
            ApiError::Api { errcode, .. }
            | ApiError::Credentials { errcode, .. }
            | ApiError::RetryLater { errcode, .. } => *errcode,
            ApiError::QuotaExhausted { .. } => DAILY_QUOTA,
            ApiError::Network(_) | ApiError::ConnectionLost(_) => ERRCODE_NETWORK,
            ApiError::Timeout => ERRCODE_TIMEOUT,
            ApiError::InvalidJson { .. } => ERRCODE_INVALID_JSON,
            ApiError::Config(_) => ERRCODE_CONFIG,
            ApiError::Http { .. } => ERRCODE_HTTP,
        }
    }

    /// A human-readable message (WeChat's errmsg when there is one).
    pub fn errmsg(&self) -> String {
        match self {
            ApiError::Api { errmsg, .. }
            | ApiError::Credentials { errmsg, .. }
            | ApiError::QuotaExhausted { errmsg }
            | ApiError::RetryLater { errmsg, .. } => errmsg.clone(),
            other => other.to_string(),
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Api { errcode, .. } => matches!(*errcode, SYSTEM_BUSY | FREQ_LIMIT),
            ApiError::RetryLater { .. }
            | ApiError::Network(_)
            | ApiError::Timeout
            | ApiError::ConnectionLost(_) => true,
            ApiError::Http { status, .. } => *status >= 500 || *status == 429,
            ApiError::UnknownOutcome { cause } => cause.is_transient(),
            _ => false,
        }
    }

    /// Whether the call may have taken effect although it failed (see the module docs): then
    /// sending it again may deliver it twice, unless WeChat deduplicates it by a key.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ApiError::UnknownOutcome { .. } => true,
            ApiError::Queued { cause } => cause.outcome_unknown(),
            _ => false,
        }
    }

    /// The error of one attempt whose request went out, as the caller sees it: failures that
    /// leave the outcome open become [`ApiError::UnknownOutcome`]. A timeout or lost
    /// connection came after the request was sent (a connect failure is [`ApiError::Network`]);
    /// an answer that was not WeChat's JSON, or a 5xx from whatever stands in front of it
    /// (a 503 says the request was refused, so it is definite), says nothing of what happened
    /// behind it.
    pub(crate) fn after_sending(self) -> ApiError {
        let open = match &self {
            ApiError::Timeout | ApiError::ConnectionLost(_) | ApiError::InvalidJson { .. } => true,
            ApiError::Http { status, .. } => *status >= 500 && *status != 503,
            _ => false,
        };
        if open {
            ApiError::UnknownOutcome {
                cause: Box::new(self),
            }
        } else {
            self
        }
    }

    /// Build the error for a non-zero errcode, applying the policy categories.
    pub(crate) fn from_errcode(errcode: i64, errmsg: String) -> ApiError {
        match errcode {
            INVALID_APPID | INVALID_APPSECRET | IP_NOT_WHITELISTED => {
                let hint = credentials_hint(errcode, &errmsg);
                ApiError::Credentials {
                    errcode,
                    errmsg,
                    hint,
                }
            }
            DAILY_QUOTA => ApiError::QuotaExhausted { errmsg },
            CLIENTMSGID_TOO_FAST => ApiError::RetryLater {
                errcode,
                errmsg,
                retry_after: CLIENTMSGID_RETRY_AFTER,
            },
            _ => ApiError::Api { errcode, errmsg },
        }
    }
}

/// Whether an errcode is retried with exponential backoff.
pub(crate) fn is_backoff_errcode(errcode: i64) -> bool {
    matches!(errcode, SYSTEM_BUSY | FREQ_LIMIT)
}

/// Whether an errcode means the access_token used was rejected.
pub(crate) fn is_token_rejected(errcode: i64) -> bool {
    matches!(
        errcode,
        INVALID_CREDENTIAL | INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED
    )
}

/// What to fix in the console for a credentials errcode.
fn credentials_hint(errcode: i64, errmsg: &str) -> String {
    match errcode {
        INVALID_APPID => "check the AppID (开发 → 基本配置 → 开发者ID(AppID)) in the config".into(),
        INVALID_APPSECRET => {
            "check the AppSecret (开发 → 基本配置 → 开发者密码(AppSecret)); it may have been reset"
                .into()
        }
        _ => match reported_ip(errmsg) {
            Some(ip) => format!(
                "add {ip} to the IP whitelist (开发 → 基本配置 → IP白名单) in the 公众平台 console"
            ),
            None => "add this server's public IP to the IP whitelist (开发 → 基本配置 → IP白名单)"
                .into(),
        },
    }
}

/// The caller IP WeChat reports in a 40164 errmsg ("invalid ip 1.2.3.4 ipv6 ..., not in whitelist").
pub(crate) fn reported_ip(errmsg: &str) -> Option<String> {
    let rest = errmsg.split("invalid ip ").nth(1)?;
    let ip: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
        .collect();
    (!ip.is_empty()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_is_extracted_from_40164_errmsg() {
        let msg = "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 6543";
        assert_eq!(reported_ip(msg).as_deref(), Some("203.0.113.7"));
        let e = ApiError::from_errcode(IP_NOT_WHITELISTED, msg.into());
        assert!(e
            .to_string()
            .contains("add 203.0.113.7 to the IP whitelist"));
        assert!(!e.is_transient());
        assert_eq!(reported_ip("no ip here"), None);
    }

    #[test]
    fn categories_and_codes() {
        assert!(ApiError::from_errcode(-1, "system busy".into()).is_transient());
        assert!(ApiError::from_errcode(45011, "freq".into()).is_transient());
        assert!(!ApiError::from_errcode(45015, "window".into()).is_transient());
        assert!(matches!(
            ApiError::from_errcode(45009, "quota".into()),
            ApiError::QuotaExhausted { .. }
        ));
        match ApiError::from_errcode(45066, "too fast".into()) {
            ApiError::RetryLater { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(60))
            }
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(ApiError::Timeout.errcode(), ERRCODE_TIMEOUT);
        assert_eq!(ApiError::Network("x".into()).errcode(), ERRCODE_NETWORK);
        assert_eq!(
            ApiError::from_errcode(40125, "bad".into()).errcode(),
            INVALID_APPSECRET
        );
        assert_eq!(ApiError::from_errcode(45009, "q".into()).errcode(), 45009);
        assert_eq!(
            ApiError::ConnectionLost("reset".into()).errcode(),
            ERRCODE_NETWORK
        );
        assert_eq!(
            ApiError::from_errcode(40003, "openid".into()).errmsg(),
            "openid"
        );
    }

    #[test]
    fn only_failures_after_the_request_went_out_leave_the_outcome_open() {
        let open = |e: ApiError| e.after_sending().outcome_unknown();
        assert!(open(ApiError::Timeout));
        assert!(open(ApiError::ConnectionLost("reset by peer".into())));
        assert!(open(ApiError::InvalidJson {
            raw: "<html>".into(),
            reason: "expected value".into()
        }));
        for status in [500, 502, 504] {
            assert!(open(ApiError::Http {
                status,
                body: String::new()
            }));
        }
        // WeChat answered, or nothing left: sending again cannot duplicate.
        assert!(!open(ApiError::from_errcode(-1, "system error".into())));
        assert!(!open(ApiError::from_errcode(45015, "window".into())));
        assert!(!open(ApiError::Network("connection refused".into())));
        assert!(!open(ApiError::Http {
            status: 503,
            body: String::new()
        }));
        assert!(!open(ApiError::Http {
            status: 429,
            body: String::new()
        }));
        let unknown = ApiError::Timeout.after_sending();
        assert_eq!(unknown.errcode(), ERRCODE_TIMEOUT);
        assert!(unknown.is_transient());
        assert!(unknown.to_string().contains("may have taken effect"));
        let queued = ApiError::Queued {
            cause: Box::new(unknown),
        };
        assert!(queued.outcome_unknown());
    }
}
