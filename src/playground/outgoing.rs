//! What a simulated user sends, as the page asks for it: checked (a clear 4xx for anything a
//! user could not send), then turned into the inbound message WeChat would POST and what the
//! user's side of the conversation shows.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, PlayError, MAX_PICS, MAX_SHORT, MAX_TEXT_CHARS, MAX_URL};
use crate::commands::chat::slash::{self, Inbound};

/// A message or event the page sends as a simulated user.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    /// A text message.
    Text {
        /// What was typed.
        content: String,
    },
    /// Follow, from a QR code with a scene when given.
    Subscribe {
        /// The QR code's scene.
        #[serde(default)]
        scene: Option<String>,
    },
    /// Unfollow.
    Unsubscribe,
    /// A `click` menu button.
    Click {
        /// Its key.
        key: String,
    },
    /// A `view` menu button.
    View {
        /// Its URL.
        url: String,
    },
    /// A follower scanning a QR code.
    Scan {
        /// The scene.
        key: String,
    },
    /// A menu's scan button.
    Scancode {
        /// `scancode_push` or `scancode_waitmsg`.
        event: String,
        /// Its key.
        key: String,
        /// What the code said.
        #[serde(default)]
        result: Option<String>,
    },
    /// A menu's picture button.
    Pics {
        /// `pic_sysphoto`, `pic_photo_or_album` or `pic_weixin`.
        event: String,
        /// Its key.
        key: String,
        /// How many pictures.
        #[serde(default)]
        count: Option<u32>,
    },
    /// A menu's location picker.
    LocationSelect {
        /// Its key.
        key: String,
        /// Latitude.
        lat: f64,
        /// Longitude.
        lng: f64,
        /// Label.
        #[serde(default)]
        label: String,
    },
    /// A location message.
    Location {
        /// Latitude.
        lat: f64,
        /// Longitude.
        lng: f64,
        /// Label.
        #[serde(default)]
        label: String,
    },
    /// A voice message.
    Voice {
        /// What speech recognition heard.
        #[serde(default)]
        recognition: String,
    },
    /// A video message.
    Video,
    /// A shared link.
    Link {
        /// Title.
        title: String,
        /// URL.
        url: String,
    },
}

pub(super) fn check_len(what: &str, value: &str, max: usize) -> Result<(), PlayError> {
    if value.len() > max {
        return Err(bad(format!("{what} is longer than {max} bytes")));
    }
    Ok(())
}

fn check_key(value: &str) -> Result<(), PlayError> {
    if value.trim().is_empty() {
        return Err(bad("the key is empty"));
    }
    check_len("the key", value, MAX_SHORT)
}

fn check_url(value: &str) -> Result<(), PlayError> {
    check_len("the URL", value, MAX_URL)?;
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(bad("the URL must be an http(s) URL")),
    }
}

fn check_place(lat: f64, lng: f64, label: &str) -> Result<(), PlayError> {
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(bad("latitude must be between -90 and 90"));
    }
    if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
        return Err(bad("longitude must be between -180 and 180"));
    }
    check_len("the label", label, MAX_SHORT)
}

/// An OpenID as WeChat makes them: letters, digits, `_` and `-`.
pub(super) fn check_openid(openid: &str) -> Result<(), PlayError> {
    let ok = (1..=64).contains(&openid.len())
        && openid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(bad("an OpenID is 1 to 64 letters, digits, '_' or '-'"))
    }
}

impl Outgoing {
    /// The inbound message it is, and what the user's side of the conversation shows; or why
    /// it cannot be sent.
    pub(super) fn understand(self) -> Result<(Inbound, Value), PlayError> {
        let event = |text: String| json!({ "type": "event", "text": text });
        Ok(match self {
            Outgoing::Text { content } => {
                if content.trim().is_empty() {
                    return Err(bad("an empty message is not sent"));
                }
                if content.chars().count() > MAX_TEXT_CHARS {
                    return Err(bad(format!(
                        "a text message is at most {MAX_TEXT_CHARS} characters"
                    )));
                }
                let shown = json!({ "type": "text", "content": content });
                (Inbound::Text(content), shown)
            }
            Outgoing::Subscribe { scene } => {
                let scene = scene.filter(|s| !s.trim().is_empty());
                if let Some(scene) = &scene {
                    check_len("the scene", scene, 64)?;
                }
                let text = match &scene {
                    Some(scene) => format!("followed the account (QR scene {scene})"),
                    None => "followed the account".to_string(),
                };
                (Inbound::Subscribe(scene), event(text))
            }
            Outgoing::Unsubscribe => (Inbound::Unsubscribe, event("unfollowed the account".into())),
            Outgoing::Click { key } => {
                check_key(&key)?;
                let text = format!("tapped menu button {key}");
                (Inbound::Click(key), event(text))
            }
            Outgoing::View { url } => {
                check_url(&url)?;
                let text = format!("opened {url}");
                (Inbound::View(url), event(text))
            }
            Outgoing::Scan { key } => {
                check_key(&key)?;
                let text = format!("scanned QR scene {key}");
                (Inbound::Scan(key), event(text))
            }
            Outgoing::Scancode {
                event: name,
                key,
                result,
            } => {
                check_key(&key)?;
                let name: &'static str = match name.as_str() {
                    "scancode_push" => "scancode_push",
                    "scancode_waitmsg" => "scancode_waitmsg",
                    _ => return Err(bad("event must be scancode_push or scancode_waitmsg")),
                };
                let result = result
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| slash::DEFAULT_SCAN_RESULT.to_string());
                check_len("the scan result", &result, MAX_URL)?;
                let text = format!("scanned a code with {key}: {result}");
                (
                    Inbound::MenuScan {
                        event: name,
                        key,
                        result,
                    },
                    event(text),
                )
            }
            Outgoing::Pics {
                event: name,
                key,
                count,
            } => {
                check_key(&key)?;
                let name: &'static str = match name.as_str() {
                    "pic_sysphoto" => "pic_sysphoto",
                    "pic_photo_or_album" => "pic_photo_or_album",
                    "pic_weixin" => "pic_weixin",
                    _ => {
                        return Err(bad(
                            "event must be pic_sysphoto, pic_photo_or_album or pic_weixin",
                        ))
                    }
                };
                let count = count.unwrap_or(1);
                if !(1..=MAX_PICS).contains(&count) {
                    return Err(bad(format!("1 to {MAX_PICS} pictures")));
                }
                let text = format!("sent {count} picture(s) with {key}");
                (
                    Inbound::MenuPics {
                        event: name,
                        key,
                        count,
                    },
                    event(text),
                )
            }
            Outgoing::LocationSelect {
                key,
                lat,
                lng,
                label,
            } => {
                check_key(&key)?;
                check_place(lat, lng, &label)?;
                let text = format!("picked a place with {key}: {lat},{lng} {label}");
                (
                    Inbound::LocationSelect {
                        key,
                        lat: lat.to_string(),
                        lng: lng.to_string(),
                        label,
                    },
                    event(text),
                )
            }
            Outgoing::Location { lat, lng, label } => {
                check_place(lat, lng, &label)?;
                let shown = json!({ "type": "location", "lat": lat, "lng": lng, "label": label });
                (
                    Inbound::Location {
                        lat: lat.to_string(),
                        lng: lng.to_string(),
                        label,
                    },
                    shown,
                )
            }
            Outgoing::Voice { recognition } => {
                check_len("the recognition", &recognition, MAX_SHORT * 4)?;
                let shown = json!({ "type": "voice", "recognition": recognition });
                (Inbound::Voice(recognition), shown)
            }
            Outgoing::Video => (Inbound::Video { short: false }, json!({ "type": "video" })),
            Outgoing::Link { title, url } => {
                check_len("the title", &title, MAX_SHORT)?;
                check_url(&url)?;
                let shown = json!({ "type": "link", "title": title, "url": url });
                (Inbound::Link { title, url }, shown)
            }
        })
    }
}
