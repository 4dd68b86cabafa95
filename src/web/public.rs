//! Static files: the `public/` directory beside the entry script, served at `/public/` by
//! tower-http's [`ServeDir`] (content types, `Last-Modified`/`If-Modified-Since`, ranges, and
//! no way out of the directory). ServeDir gives no `ETag`, so [`etag`] adds a weak one made of
//! the file's size and modification time (as nginx does) and answers a matching
//! `If-None-Match` with 304.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeDir;

/// Where the static files are served.
pub const PUBLIC_PATH: &str = "/public";

/// The directory's name beside the entry script.
pub const PUBLIC_DIR: &str = "public";

/// The service for [`PUBLIC_PATH`], serving `dir` (which need not exist: then every file is
/// 404).
pub fn public_files(dir: &Path) -> Router {
    Router::new()
        .fallback_service(ServeDir::new(dir))
        .layer(middleware::from_fn(etag))
}

/// Adds an `ETag` to a file served whole and answers 304 when the client has it already.
async fn etag(request: Request, next: Next) -> Response {
    let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
    let mut response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let Some(tag) = etag_of(response.headers()) else {
        return response;
    };
    if if_none_match.is_some_and(|wanted| matches_any(&wanted, &tag)) {
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        if let Some(modified) = response.headers().get(LAST_MODIFIED) {
            not_modified
                .headers_mut()
                .insert(LAST_MODIFIED, modified.clone());
        }
        not_modified.headers_mut().insert(ETAG, tag);
        return not_modified;
    }
    response.headers_mut().insert(ETAG, tag);
    response
}

/// `W/"<size>-<mtime>"` in hex, from the headers ServeDir wrote.
fn etag_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let size: u64 = headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
    let modified = httpdate::parse_http_date(headers.get(LAST_MODIFIED)?.to_str().ok()?).ok()?;
    let secs = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    HeaderValue::from_str(&format!("W/\"{size:x}-{secs:x}\"")).ok()
}

/// Whether an `If-None-Match` list names `tag` (weak comparison, RFC 9110 §13.1.2) or is `*`.
fn matches_any(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else {
        return false;
    };
    let tag = opaque(tag);
    wanted
        .split(',')
        .any(|candidate| candidate.trim() == "*" || opaque(candidate) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = HeaderValue::from_static("W/\"a-b\"");
        let m = |s: &'static str| matches_any(&HeaderValue::from_static(s), &tag);
        assert!(m("W/\"a-b\""));
        assert!(m("\"a-b\""));
        assert!(m("\"x\", W/\"a-b\""));
        assert!(m("*"));
        assert!(!m("\"a-c\""));
    }
}
