//! The HTTP exchange with the WeChat API, beneath both the [`WechatClient`](super::WechatClient)
//! and the token manager: one `reqwest::Client` and base URL, one request (query, JSON or
//! multipart), WeChat's JSON turned into a value or a typed [`ApiError`], the log line and
//! metric of every call, and the retry policy for "busy" answers with the one backoff formula
//! the API module uses (the outbox spaces its retries with it too).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::error::{self, ApiError};
use crate::sync::lock;

/// `first`, doubled for each retry after the first (`retry` is 0-based), never above `max`.
pub fn backoff(first: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max)
}

/// Bounded exponential backoff for -1 (system busy) and 45011 (too frequent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries including the first.
    pub attempts: u32,
    /// Delay before the second try; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound for one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed try number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        backoff(self.base_delay, self.max_delay, attempt)
    }

    /// How long to wait before trying again after try number `attempt` (0-based) failed
    /// with `error`; `None` when the error is not "busy" or the tries are used up.
    pub(crate) fn retry_after_busy(&self, error: &ApiError, attempt: u32) -> Option<Duration> {
        let busy =
            matches!(error, ApiError::Api { .. }) && error::is_backoff_errcode(error.errcode());
        (busy && attempt + 1 < self.attempts).then(|| self.delay(attempt))
    }
}

/// The body of one request.
pub(crate) enum Wire<'a> {
    /// Query parameters only (GET).
    Query(&'a [(&'a str, &'a str)]),
    /// A JSON body.
    Json(&'a Value),
    /// Query parameters plus a multipart body.
    Multipart(&'a [(&'a str, &'a str)], &'a [UploadPart]),
}

/// One part of a multipart upload (rebuilt for each try, since reqwest forms are single-use).
#[derive(Debug, Clone)]
pub struct UploadPart {
    /// Form field name (`media`, `description`).
    pub name: String,
    /// File name sent to WeChat; WeChat infers the format from its extension.
    pub filename: Option<String>,
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: Option<String>,
    /// The content.
    pub data: Bytes,
}

/// The connection to one API host, shared by a client and its token manager.
pub(crate) struct Transport {
    http: reqwest::Client,
    /// API host without a trailing slash.
    base: String,
    /// Credentials errcodes already logged, so a wrong secret is reported once, not per call.
    logged_fatal: Mutex<HashSet<i64>>,
}

/// The HTTP client the WeChat API is called with (rustls, the given timeouts, idle
/// connections kept a minute). A host builds one and shares it between its accounts
/// ([`ClientConfig::http`](crate::api::ClientConfig::http)): a client costs tens of KiB and
/// its own connections, which a thousand accounts should not multiply.
pub fn http_client(
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("wechat-lua/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::Config(format!("cannot build HTTP client: {e}")))
}

impl Transport {
    /// A transport to `base` (http or https) with the given timeouts, through `shared` when
    /// given (one connection pool and TLS setup for every account of a host), else through
    /// an HTTP client of its own.
    pub(crate) fn new(
        base: &str,
        timeout: Duration,
        connect_timeout: Duration,
        shared: Option<reqwest::Client>,
    ) -> Result<Arc<Transport>, ApiError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::Config(format!(
                "API base URL must start with http:// or https://: {base}"
            )));
        }
        let http = match shared {
            Some(http) => http,
            None => http_client(timeout, connect_timeout)?,
        };
        Ok(Arc::new(Transport {
            http,
            base,
            logged_fatal: Mutex::new(HashSet::new()),
        }))
    }

    /// The HTTP client this transport sends with.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The API host this transport talks to.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// One request; the answer's status, headers and body as they came.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        wire: &Wire<'_>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Bytes), ApiError> {
        self.send_raw_as(method, path, token.map(|t| ("access_token", t)), wire)
            .await
    }

    /// [`send_raw`](Self::send_raw) with the token under another query name (the open
    /// platform's `component_access_token`).
    async fn send_raw_as(
        &self,
        method: Method,
        path: &str,
        token: Option<(&str, &str)>,
        wire: &Wire<'_>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Bytes), ApiError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, url);
        if let Some((name, t)) = token {
            req = req.query(&[(name, t)]);
        }
        req = match wire {
            Wire::Query(q) => req.query(q),
            Wire::Json(v) => req.json(v),
            Wire::Multipart(q, parts) => {
                let mut form = reqwest::multipart::Form::new();
                for p in parts.iter() {
                    let mut part = reqwest::multipart::Part::bytes(p.data.to_vec());
                    if let Some(f) = &p.filename {
                        part = part.file_name(f.clone());
                    }
                    if let Some(ct) = &p.content_type {
                        part = part
                            .mime_str(ct)
                            .map_err(|e| ApiError::Config(format!("bad content type {ct}: {e}")))?;
                    }
                    form = form.part(p.name.clone(), part);
                }
                req.query(q).multipart(form)
            }
        };
        let resp = req.send().await.map_err(map_reqwest)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(map_reqwest)?;
        Ok((status, headers, body))
    }

    /// One request whose answer is WeChat JSON; non-zero errcodes become errors.
    pub(crate) async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        wire: &Wire<'_>,
    ) -> Result<Value, ApiError> {
        let (status, _, body) = self.send_raw(method, path, token, wire).await?;
        let r = interpret_json(status, &body);
        self.log_outcome(path, &r);
        r
    }

    /// [`send_json`](Self::send_json) with the token under the query name `token.0`.
    pub(crate) async fn send_json_as(
        &self,
        method: Method,
        path: &str,
        token: Option<(&str, &str)>,
        wire: &Wire<'_>,
    ) -> Result<Value, ApiError> {
        let (status, _, body) = self.send_raw_as(method, path, token, wire).await?;
        let r = interpret_json(status, &body);
        self.log_outcome(path, &r);
        r
    }

    /// The metric and log line of one call's outcome.
    pub(crate) fn log_outcome<T>(&self, path: &str, r: &Result<T, ApiError>) {
        crate::metrics::metrics().api_call(path, r.as_ref().map_or_else(ApiError::errcode, |_| 0));
        match r {
            Ok(_) => tracing::debug!(path, "WeChat API call ok"),
            Err(e @ ApiError::Credentials { errcode, hint, .. }) => {
                if lock(&self.logged_fatal).insert(*errcode) {
                    tracing::error!(path, errcode, hint = %hint, "{e}");
                } else {
                    tracing::debug!(path, errcode, "credentials still rejected");
                }
            }
            Err(e) => tracing::warn!(path, errcode = e.errcode(), "WeChat API call failed: {e}"),
        }
    }
}

/// A reqwest failure as an [`ApiError`], keeping apart what never left (a connect failure,
/// connect timeouts included) from what failed after the request was sent (a timeout, a
/// connection lost mid-answer): only the latter may have reached WeChat.
fn map_reqwest(e: reqwest::Error) -> ApiError {
    if e.is_connect() {
        ApiError::Network(describe(e))
    } else if e.is_timeout() {
        ApiError::Timeout
    } else {
        ApiError::ConnectionLost(describe(e))
    }
}

/// A reqwest error with its causes: reqwest's own text is only "error sending request",
/// while the cause says what an operator can act on (a name that does not resolve, a refused
/// connection, a certificate).
fn describe(e: reqwest::Error) -> String {
    // without_url: the URL carries the access_token or the secret. The causes below it are
    // the connector's and resolver's, which name at most the host.
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn truncate(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(300).collect()
}

/// Turn a WeChat JSON answer into a value or a typed error.
pub(crate) fn interpret_json(status: StatusCode, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if status.is_success() => {
            return Err(ApiError::InvalidJson {
                raw: truncate(body),
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(ApiError::Http {
                status: status.as_u16(),
                body: truncate(body),
            })
        }
    };
    let errcode = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if errcode == 0 {
        if status.is_success() {
            return Ok(v);
        }
        return Err(ApiError::Http {
            status: status.as_u16(),
            body: truncate(body),
        });
    }
    let errmsg = v
        .get("errmsg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if errcode == error::CLIENTMSGID_EXISTS {
        // The message was already sent under this clientmsgid: report the original msg_id.
        if let Some(msg_id) = v.get("msg_id").cloned().or_else(|| msg_id_in(&errmsg)) {
            let mut out = v.clone();
            if let Some(o) = out.as_object_mut() {
                o.insert("msg_id".into(), msg_id);
                o.insert("errcode".into(), Value::from(0));
                o.insert("duplicate".into(), Value::Bool(true));
            }
            return Ok(out);
        }
    }
    Err(ApiError::from_errcode(errcode, errmsg))
}

/// A msg_id mentioned in an errmsg ("... msg_id: 1000001").
fn msg_id_in(errmsg: &str) -> Option<Value> {
    let rest = errmsg.split("msg_id").nth(1)?;
    let digits: String = rest
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<i64>().ok().map(Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_failure_says_why_not_just_that_sending_failed() {
        // A port nothing listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/cgi-bin/token?secret=s3cr3t"
            ))
            .send()
            .await
            .unwrap_err();
        let ApiError::Network(text) = map_reqwest(e) else {
            panic!("a refused connection never left");
        };
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0), Duration::from_millis(300));
        assert_eq!(p.delay(1), Duration::from_millis(600));
        assert_eq!(p.delay(10), Duration::from_secs(2));
        assert_eq!(p.delay(40), Duration::from_secs(2));
    }

    #[test]
    fn only_busy_api_answers_are_retried_and_only_while_tries_remain() {
        let p = RetryPolicy::default();
        let busy = ApiError::from_errcode(-1, "system error".into());
        assert_eq!(
            p.retry_after_busy(&busy, 0),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            p.retry_after_busy(&busy, 1),
            Some(Duration::from_millis(600))
        );
        assert_eq!(p.retry_after_busy(&busy, 2), None, "three tries in all");
        let permanent = ApiError::from_errcode(40003, "invalid openid".into());
        assert_eq!(p.retry_after_busy(&permanent, 0), None);
        assert_eq!(p.retry_after_busy(&ApiError::Timeout, 0), None);
    }

    #[test]
    fn interpret_json_policy() {
        let ok =
            interpret_json(StatusCode::OK, br#"{"errcode":0,"errmsg":"ok","msgid":5}"#).unwrap();
        assert_eq!(ok["msgid"], 5);
        let e = interpret_json(
            StatusCode::OK,
            br#"{"errcode":45015,"errmsg":"response out of time limit"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ApiError::Api { errcode: 45015, .. }));
        let dup = interpret_json(
            StatusCode::OK,
            br#"{"errcode":45065,"errmsg":"clientmsgid exist, msg_id: 1000042"}"#,
        )
        .unwrap();
        assert_eq!(dup["msg_id"], 1000042);
        assert!(matches!(
            interpret_json(StatusCode::OK, b"<html>").unwrap_err(),
            ApiError::InvalidJson { .. }
        ));
        assert!(matches!(
            interpret_json(StatusCode::BAD_GATEWAY, b"<html>").unwrap_err(),
            ApiError::Http { status: 502, .. }
        ));
    }
}
