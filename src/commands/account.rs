//! Commands that act on the WeChat account through the API: `menu push|show|delete` and
//! `token` (whether an access_token and a jsapi_ticket are cached and until when; the values
//! themselves only when asked with `--show`), and `accounts` (every account served, configured
//! or authorized, with its tokens' state).

use std::path::Path;

use serde_json::Value;

use crate::api::token_store::StoreTokenPersistence;
use crate::api::{CachedToken, TokenPersistence, WechatClient};
use crate::config::Config;
use crate::host::api_client;

async fn client(config: &Config) -> anyhow::Result<WechatClient> {
    let store = crate::store::open(config.store.as_deref(), &config.data).await?;
    api_client(config, &store)?.ok_or_else(|| {
        anyhow::anyhow!("no appid/appsecret configured: set WECHAT_APPID and WECHAT_APPSECRET (or appid/appsecret in wechat-lua.toml)")
    })
}

/// Reads a menu definition: JSON, or TOML when the file ends in `.toml`.
pub fn read_menu(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let menu: Value = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    };
    let buttons = menu
        .get("button")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: a menu needs a `button` list (1 to 3 buttons)",
                path.display()
            )
        })?;
    if buttons.is_empty() || buttons.len() > 3 {
        anyhow::bail!(
            "{}: a menu has 1 to 3 top-level buttons, not {}",
            path.display(),
            buttons.len()
        );
    }
    for (i, button) in buttons.iter().enumerate() {
        let subs = button
            .get("sub_button")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if subs > 5 {
            anyhow::bail!(
                "{}: button {} has {subs} sub-buttons (at most 5)",
                path.display(),
                i + 1
            );
        }
    }
    Ok(menu)
}

/// `menu push FILE`.
pub async fn menu_push(config: &Config, path: &Path) -> anyhow::Result<String> {
    let menu = read_menu(path)?;
    client(config).await?.menu().create(&menu).await?;
    Ok(format!("menu from {} is live", path.display()))
}

/// `menu show`.
pub async fn menu_show(config: &Config) -> anyhow::Result<String> {
    let menu = client(config).await?.menu().get().await?;
    Ok(serde_json::to_string_pretty(&menu)?)
}

/// `menu delete`.
pub async fn menu_delete(config: &Config) -> anyhow::Result<String> {
    client(config).await?.menu().delete().await?;
    Ok("menu deleted".into())
}

/// `token [--show]`: what the store holds, without fetching: the access_token and the
/// JS-SDK's jsapi_ticket.
pub async fn token_status(config: &Config, show: bool) -> anyhow::Result<String> {
    let appid = config
        .appid
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no appid configured: set WECHAT_APPID"))?;
    let store = crate::store::open(config.store.as_deref(), &config.data).await?;
    let now = crate::clock::unix_secs();
    let token = StoreTokenPersistence::new(store.clone(), appid)
        .load()
        .await;
    let ticket = StoreTokenPersistence::jsapi_ticket(store, appid)
        .load()
        .await;
    Ok(format!(
        "{}\n{}",
        describe_cached("access_token", "API call", appid, token, now, show),
        describe_cached("jsapi_ticket", "wx.jssdk.config", appid, ticket, now, show),
    ))
}

/// `accounts`: every account the host serves and what the store holds for it, without
/// fetching anything: the configured accounts (`default` and `[[accounts]]`) with their
/// access_token's state, and with `[component]` the platform's ticket and token and each
/// authorizer's refresh token and access_token. No secret is printed.
pub async fn accounts(config: &Config) -> anyhow::Result<String> {
    let store = crate::store::open(config.store.as_deref(), &config.data).await?;
    let now = crate::clock::unix_secs();
    let state_of = |what: &str, cached: Option<CachedToken>| match cached {
        Some(t) if t.expires_at_unix > now => {
            format!("{what} expires {}", local_time(t.expires_at_unix, now))
        }
        Some(t) => format!("{what} expired {}", local_time(t.expires_at_unix, now)),
        None => format!("no {what} cached"),
    };
    let token_line = |cached| state_of("access_token", cached);
    let mut lines = vec!["configured:".to_string()];
    let configured = std::iter::once((
        crate::config::DEFAULT_ACCOUNT,
        config.appid.as_deref(),
        config.appsecret.is_some(),
    ))
    .chain(config.accounts.iter().map(|a| {
        (
            a.name.as_str(),
            Some(a.appid.as_str()),
            a.appsecret.is_some(),
        )
    }));
    for (name, appid, has_secret) in configured {
        let state = match appid {
            Some(appid) if has_secret => token_line(
                StoreTokenPersistence::new(store.clone(), appid)
                    .load()
                    .await,
            ),
            Some(_) => "no appsecret: no API calls".to_string(),
            None => "no appid".to_string(),
        };
        lines.push(format!("  {name:<16} {:<20} {state}", appid.unwrap_or("-")));
    }
    if let Some(component) = &config.component {
        let keys = |f: fn(&str) -> String| f(&component.appid);
        let ticket = store
            .get(&keys(crate::store::keys::component_ticket_key))
            .await?;
        let token = StoreTokenPersistence::component_token(store.clone(), &component.appid)
            .load()
            .await;
        lines.push(format!(
            "open platform {}: {}; {}",
            component.appid,
            if ticket.is_some() {
                "component_verify_ticket kept"
            } else {
                "no component_verify_ticket yet (WeChat pushes one every 10 minutes)"
            },
            state_of("component_access_token", token)
        ));
        let list: Vec<String> = store
            .get(&keys(crate::store::keys::authorizers_key))
            .await?
            .and_then(|raw| serde_json::from_str(&raw).ok())
            .unwrap_or_default();
        lines.push(format!("authorized ({}):", list.len()));
        for appid in &list {
            let refresh = store
                .get(&crate::store::keys::authorizer_refresh_key(
                    &component.appid,
                    appid,
                ))
                .await?;
            let token = StoreTokenPersistence::new(store.clone(), appid)
                .load()
                .await;
            lines.push(format!(
                "  {appid:<20} {}; {}",
                if refresh.is_some() {
                    "refresh token kept"
                } else {
                    "no refresh token: must authorize again"
                },
                token_line(token)
            ));
        }
    }
    Ok(lines.join("\n"))
}

/// One line (two with `show`) on a stored token or ticket.
fn describe_cached(
    what: &str,
    fetched_by: &str,
    appid: &str,
    cached: Option<CachedToken>,
    now: i64,
    show: bool,
) -> String {
    match cached {
        Some(CachedToken {
            access_token,
            expires_at_unix,
        }) if expires_at_unix > now => {
            let mut text = format!(
                "{what} cached for {appid}: expires {}",
                local_time(expires_at_unix, now)
            );
            if show {
                text.push_str(&format!("\n{access_token}"));
            }
            text
        }
        Some(CachedToken {
            expires_at_unix, ..
        }) => format!(
            "the cached {what} for {appid} expired {}; the next {fetched_by} fetches a new one",
            local_time(expires_at_unix, now)
        ),
        None => format!("no {what} cached for {appid}; the next {fetched_by} fetches one"),
    }
}

/// `unix` as a date-time in the local time zone with the time from `now`:
/// `2026-11-30 14:05:09 +08:00 (in 1 h 52 min)`.
fn local_time(unix: i64, now: i64) -> String {
    use chrono::{Local, TimeZone};
    let when = Local
        .timestamp_opt(unix, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
        .unwrap_or_else(|| format!("at Unix time {unix}"));
    format!("{when} ({})", relative(unix - now))
}

/// A span of seconds as people say it: `in 1 h 52 min`, `3 min ago`, `now`.
fn relative(secs: i64) -> String {
    let span = secs.unsigned_abs();
    let text = match span {
        0..=59 => return "now".into(),
        60..=3599 => format!("{} min", span / 60),
        3600..=86_399 => match (span % 3600) / 60 {
            0 => format!("{} h", span / 3600),
            min => format!("{} h {min} min", span / 3600),
        },
        _ => format!("{} d", span / 86_400),
    };
    if secs > 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn times_read_as_local_date_times_with_the_time_from_now() {
        assert_eq!(relative(30), "now");
        assert_eq!(relative(6720), "in 1 h 52 min");
        assert_eq!(relative(7200), "in 2 h");
        assert_eq!(relative(-180), "3 min ago");
        assert_eq!(relative(3 * 86_400), "in 3 d");
        let shown = local_time(1_700_000_000, 1_700_000_000 - 600);
        assert!(shown.ends_with(" (in 10 min)"), "{shown}");
        assert!(shown.starts_with("2023-11-1"), "a date: {shown}");
        assert_eq!(
            shown.matches(':').count(),
            3,
            "hh:mm:ss and the offset: {shown}"
        );
    }
}
