//! The script side of `wx.route`, without Lua and without an HTTP server: route methods and
//! path patterns (`/orders/:id`, `/files/*rest`), the host's own paths no script may take, a
//! request path split into decoded segments, strict `application/x-www-form-urlencoded`
//! reading (queries and form bodies), and the plain request and response values that cross
//! between the web side ([`crate::web`]) and a Lua state.

use std::fmt;

use bytes::Bytes;

/// Where [`wx.web.require_login`](crate::script::bindings::web) sends a visitor without a
/// session; the sign-in flow (`/oauth/login?next=…`) lives there.
pub const LOGIN_PATH: &str = "/oauth/login";

/// First path segments the host serves itself: a route cannot be registered under them, and a
/// request under them never reaches a script (`/wechat/<account>` included).
pub const RESERVED_SEGMENTS: &[&str] =
    &["wechat", "healthz", "metrics", "readyz", "oauth", "public"];

/// Whether a request path (as sent, or decoded) belongs to the host: `/wechat`, `/healthz`,
/// `/metrics`, `/readyz`, or anything under `/oauth/` or `/public/`.
pub fn is_reserved(path: &str) -> bool {
    let first = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .next()
        .unwrap_or("");
    RESERVED_SEGMENTS.contains(&first)
}

/// The methods a route may be registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMethod {
    /// `GET` (also answers `HEAD`).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `PATCH`.
    Patch,
    /// `*`: every method.
    Any,
}

impl RouteMethod {
    /// The names `wx.route` accepts.
    pub const NAMES: &'static [&'static str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "*"];

    /// Reads a method as a script writes it (any case).
    pub fn parse(text: &str) -> Option<RouteMethod> {
        Some(match text.to_ascii_uppercase().as_str() {
            "GET" => RouteMethod::Get,
            "POST" => RouteMethod::Post,
            "PUT" => RouteMethod::Put,
            "DELETE" => RouteMethod::Delete,
            "PATCH" => RouteMethod::Patch,
            "*" => RouteMethod::Any,
            _ => return None,
        })
    }

    /// The name as written in `Allow` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Get => "GET",
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
            RouteMethod::Delete => "DELETE",
            RouteMethod::Patch => "PATCH",
            RouteMethod::Any => "*",
        }
    }

    /// Whether a request with `method` (upper case, as sent) is for this route.
    pub fn allows(self, method: &str) -> bool {
        match self {
            RouteMethod::Any => true,
            RouteMethod::Get => method == "GET" || method == "HEAD",
            other => other.as_str() == method,
        }
    }
}

impl fmt::Display for RouteMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this (decoded) text.
    Literal(String),
    /// `:name`: any one non-empty segment, captured.
    Capture(String),
}

/// A route's path: literal segments, `:name` captures, and an optional trailing `*rest` that
/// captures the remainder (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    segments: Vec<Segment>,
    rest: Option<String>,
    /// As written, for logs and duplicate detection.
    text: String,
}

/// Why a path pattern cannot be a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not starting with `/`.
    #[error("the path must start with /")]
    NotAbsolute,
    /// `?` or `#` in a pattern.
    #[error("the path cannot contain ? or # (routes match the path only; read req.query)")]
    QueryOrFragment,
    /// `//` or a trailing `/` after other segments.
    #[error("the path has an empty segment (// or a trailing /)")]
    EmptySegment,
    /// `:` or `*` without a name, or a name that is not an identifier.
    #[error("`{0}` is not a capture: write :name or *name, with a name of letters, digits and _")]
    BadCapture(String),
    /// `*rest` anywhere but last.
    #[error("`*{0}` must be the last segment")]
    RestNotLast(String),
    /// The same name twice.
    #[error("the capture name `{0}` is used twice")]
    DuplicateName(String),
    /// Under one of the host's own paths.
    #[error("{0} is served by the host itself (reserved: /wechat, /healthz, /metrics, /readyz, /oauth/*, /public/*)")]
    Reserved(String),
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A capture's name checked: an identifier, not used before in the pattern.
fn capture_name(part: &str, name: &str, names: &mut Vec<String>) -> Result<String, PatternError> {
    if !is_identifier(name) {
        return Err(PatternError::BadCapture(part.to_string()));
    }
    if names.iter().any(|n| n == name) {
        return Err(PatternError::DuplicateName(name.to_string()));
    }
    names.push(name.to_string());
    Ok(name.to_string())
}

impl RoutePattern {
    /// Reads a pattern as a script writes it.
    pub fn parse(text: &str) -> Result<RoutePattern, PatternError> {
        let body = text.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
        if text.contains(['?', '#']) {
            return Err(PatternError::QueryOrFragment);
        }
        let mut segments = Vec::new();
        let mut rest = None;
        let mut names: Vec<String> = Vec::new();
        let parts: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            if rest.is_some() {
                return Err(PatternError::RestNotLast(rest.unwrap_or_default()));
            }
            if part.is_empty() {
                return Err(PatternError::EmptySegment);
            }
            if let Some(name) = part.strip_prefix(':') {
                segments.push(Segment::Capture(capture_name(part, name, &mut names)?));
            } else if let Some(name) = part.strip_prefix('*') {
                rest = Some(capture_name(part, name, &mut names)?);
            } else {
                if i == 0 && is_reserved(text) {
                    return Err(PatternError::Reserved(format!("/{part}")));
                }
                segments.push(Segment::Literal(part.to_string()));
            }
        }
        Ok(RoutePattern {
            segments,
            rest,
            text: text.to_string(),
        })
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The captures if `path` matches, in pattern order.
    pub fn matches(&self, path: &RoutePath) -> Option<Vec<(String, String)>> {
        let given = &path.segments;
        let fixed = self.segments.len();
        if given.len() < fixed || (self.rest.is_none() && given.len() != fixed) {
            return None;
        }
        let mut params = Vec::new();
        for (segment, value) in self.segments.iter().zip(given) {
            match segment {
                Segment::Literal(text) if text == value => {}
                Segment::Capture(name) if !value.is_empty() => {
                    params.push((name.clone(), value.clone()))
                }
                _ => return None,
            }
        }
        if let Some(name) = &self.rest {
            params.push((name.clone(), given[fixed..].join("/")));
        }
        Some(params)
    }
}

/// A request path split at `/` and each segment percent-decoded, so `%2F` stays inside its
/// segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath {
    /// The decoded segments (`/` is none; `/a/` is `["a", ""]`).
    pub segments: Vec<String>,
    /// The whole path decoded, as `req.path` shows it.
    pub decoded: String,
}

/// Why a request path or query cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("a % is not followed by two hex digits")]
    BadPercent,
    /// Decodes to bytes that are not UTF-8.
    #[error("not UTF-8 once decoded")]
    NotUtf8,
    /// A path that does not start with `/`.
    #[error("the path does not start with /")]
    NotAbsolute,
}

/// Percent-decodes `text` (and `+` as a space when `plus_is_space`, as forms write it),
/// refusing a malformed `%` and anything not UTF-8.
pub fn decode_component(text: &str, plus_is_space: bool) -> Result<String, DecodeError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + offset;
        let hex = bytes.get(at + 1..at + 3).ok_or(DecodeError::BadPercent)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(DecodeError::BadPercent);
        }
        i = at + 3;
    }
    let spaced;
    let text = if plus_is_space && text.contains('+') {
        spaced = text.replace('+', " ");
        spaced.as_str()
    } else {
        text
    };
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| DecodeError::NotUtf8)
}

impl RoutePath {
    /// Reads a request's path as sent (percent-encoded).
    pub fn parse(raw: &str) -> Result<RoutePath, DecodeError> {
        let body = raw.strip_prefix('/').ok_or(DecodeError::NotAbsolute)?;
        let segments = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/')
                .map(|s| decode_component(s, false))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(RoutePath {
            decoded: format!("/{}", segments.join("/")),
            segments,
        })
    }
}

/// Reads `a=1&b=2` strictly: every key and value percent-decoded (`+` is a space) and UTF-8,
/// in order, repeated keys kept. Empty pieces (`a=1&&b=2`) are skipped; a piece without `=`
/// is a key with an empty value.
pub fn parse_form(text: &str) -> Result<Vec<(String, String)>, DecodeError> {
    text.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            Ok((decode_component(key, true)?, decode_component(value, true)?))
        })
        .collect()
}

/// A web request as a route handler sees it; the web side fills it from the HTTP request.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// The method as sent, upper case.
    pub method: String,
    /// The path, split and decoded.
    pub path: RoutePath,
    /// The path and query as sent (`/orders?page=2`), for links back to this page.
    pub url: String,
    /// The page's full URL as the visitor's browser shows it (`[oauth] public_url` and
    /// [`url`](Self::url)), what `wx.jssdk.config` signs; `None` without a public URL.
    pub page_url: Option<String>,
    /// The query's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names, in order; repeated names appear once each time.
    pub headers: Vec<(String, String)>,
    /// Cookies of the `Cookie` header, in order.
    pub cookies: Vec<(String, String)>,
    /// The body (at most the host's body limit).
    pub body: Bytes,
    /// The client's address: the peer, or the `X-Forwarded-For` client when the peer is a
    /// trusted proxy. `None` when the request did not come over a socket (tests).
    pub ip: Option<String>,
    /// The signed-in visitor, from the session cookie.
    pub visitor: Option<Visitor>,
}

/// A visitor signed in with WeChat (网页授权), as the session says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// The visitor's OpenID under this account.
    pub openid: String,
    /// The UnionID, when the account is bound to an open-platform account.
    pub unionid: Option<String>,
}

/// What a route handler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResponse {
    /// The status, 200..=599.
    pub status: u16,
    /// Headers with lower-case names, already checked to be valid HTTP.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The outcome of a request offered to the scripts' routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOutcome {
    /// No route has this path.
    NotFound,
    /// Routes have this path, but not for this method; the methods they have.
    MethodNotAllowed {
        /// Methods the path's routes take (`GET` implies `HEAD`).
        allow: Vec<&'static str>,
    },
    /// A route answered.
    Answered {
        /// `file:line` of the route's `wx.route` call.
        route: String,
        /// Its response.
        response: RouteResponse,
    },
}

/// Why a route gave no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    /// Stopped by the route deadline, the total time budget or the run limit.
    #[error("route {route} did not answer in time: {message}")]
    TimedOut {
        /// `file:line` of the route's `wx.route` call.
        route: String,
        /// Why it was stopped (the run limit's error names the line it was at).
        message: String,
    },
    /// The handler raised an error or returned something that is not a response.
    #[error(transparent)]
    Script(#[from] crate::script::ScriptError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> RoutePath {
        RoutePath::parse(raw).unwrap()
    }

    fn params(pattern: &str, raw: &str) -> Option<Vec<(String, String)>> {
        RoutePattern::parse(pattern).unwrap().matches(&path(raw))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn literal_capture_and_rest_segments_match() {
        assert_eq!(params("/", "/"), Some(vec![]));
        assert_eq!(params("/orders", "/orders"), Some(vec![]));
        assert_eq!(
            params("/orders", "/orders/"),
            None,
            "a trailing / is another path"
        );
        assert_eq!(params("/orders", "/order"), None);
        assert_eq!(
            params("/orders/:id", "/orders/42"),
            Some(pairs(&[("id", "42")]))
        );
        assert_eq!(
            params("/orders/:id", "/orders/"),
            None,
            "a capture is not empty"
        );
        assert_eq!(params("/orders/:id", "/orders/4/2"), None);
        assert_eq!(
            params("/u/:user/o/:id", "/u/ann/o/7"),
            Some(pairs(&[("user", "ann"), ("id", "7")]))
        );
        assert_eq!(
            params("/files/*rest", "/files/a/b.txt"),
            Some(pairs(&[("rest", "a/b.txt")]))
        );
        assert_eq!(
            params("/files/*rest", "/files"),
            Some(pairs(&[("rest", "")]))
        );
        assert_eq!(params("/*all", "/x/y"), Some(pairs(&[("all", "x/y")])));
    }

    #[test]
    fn segments_are_decoded_one_by_one() {
        assert_eq!(
            params("/orders/:id", "/orders/a%2Fb"),
            Some(pairs(&[("id", "a/b")])),
            "an encoded / stays in its segment"
        );
        assert_eq!(params("/café", "/caf%C3%A9"), Some(vec![]));
        assert_eq!(path("/a%20b/c").decoded, "/a b/c");
        assert_eq!(path("/a+b").decoded, "/a+b", "+ is a plus in a path");
        assert_eq!(
            RoutePath::parse("/caf%FF"),
            Err(DecodeError::NotUtf8),
            "non-UTF-8 once decoded"
        );
        assert_eq!(RoutePath::parse("/a%2"), Err(DecodeError::BadPercent));
        assert_eq!(RoutePath::parse("/a%zz"), Err(DecodeError::BadPercent));
        assert_eq!(RoutePath::parse("*"), Err(DecodeError::NotAbsolute));
    }

    #[test]
    fn bad_patterns_say_why() {
        use PatternError::*;
        let err = |p: &str| RoutePattern::parse(p).unwrap_err();
        assert_eq!(err("orders"), NotAbsolute);
        assert_eq!(err("/a?b=1"), QueryOrFragment);
        assert_eq!(err("/a//b"), EmptySegment);
        assert_eq!(err("/a/"), EmptySegment);
        assert_eq!(err("/a/:"), BadCapture(":".into()));
        assert_eq!(err("/a/:1x"), BadCapture(":1x".into()));
        assert_eq!(err("/a/*"), BadCapture("*".into()));
        assert_eq!(err("/*rest/x"), RestNotLast("rest".into()));
        assert_eq!(err("/:id/:id"), DuplicateName("id".into()));
    }

    #[test]
    fn the_hosts_own_paths_are_reserved() {
        for taken in [
            "/wechat",
            "/wechat/:account",
            "/healthz",
            "/metrics",
            "/readyz",
            "/oauth/login",
            "/oauth/*rest",
            "/public/app.js",
        ] {
            assert!(
                matches!(RoutePattern::parse(taken), Err(PatternError::Reserved(_))),
                "{taken}"
            );
            assert!(is_reserved(taken), "{taken}");
        }
        for free in ["/", "/wechats", "/publicity", "/shop/wechat", "/:page"] {
            assert!(RoutePattern::parse(free).is_ok(), "{free}");
        }
        assert!(!is_reserved("/"));
        assert!(!is_reserved("/orders"));
    }

    #[test]
    fn methods_parse_in_any_case_and_get_answers_head() {
        assert_eq!(RouteMethod::parse("get"), Some(RouteMethod::Get));
        assert_eq!(RouteMethod::parse("*"), Some(RouteMethod::Any));
        assert_eq!(RouteMethod::parse("HEAD"), None);
        assert_eq!(RouteMethod::parse("CONNECT"), None);
        assert!(RouteMethod::Get.allows("HEAD"));
        assert!(!RouteMethod::Post.allows("GET"));
        assert!(RouteMethod::Any.allows("OPTIONS"));
    }

    #[test]
    fn forms_are_read_strictly() {
        assert_eq!(
            parse_form("a=1&b=x+y&a=2&&c&d=%E4%BD%A0").unwrap(),
            pairs(&[("a", "1"), ("b", "x y"), ("a", "2"), ("c", ""), ("d", "你")])
        );
        assert_eq!(parse_form("").unwrap(), vec![]);
        assert_eq!(parse_form("a=%"), Err(DecodeError::BadPercent));
        assert_eq!(parse_form("a=%FF"), Err(DecodeError::NotUtf8));
        assert_eq!(parse_form("a%G1=1"), Err(DecodeError::BadPercent));
    }
}
