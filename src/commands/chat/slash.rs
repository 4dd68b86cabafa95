//! What a typed line means in `wechat-lua chat`: plain text to send, or a slash command that
//! sends an event or another message type, switches the user, or controls the session; and
//! the inbound XML each message is sent as, shaped like WeChat's own.

use std::fmt::Write as _;

use crate::protocol::reply::push_cdata;

/// The help text `/help` prints, one command a line.
pub const HELP: &str = "\
text                       send a text message (start with // to send a leading /)
/subscribe [scene]         follow the account (with scene: as if from a QR code)
/unsubscribe               unfollow
/click KEY                 tap a menu button (CLICK event)
/view URL                  tap a menu link (VIEW event)
/scancode_push KEY [TEXT]  a menu's scan button; TEXT is what the code said
/scancode_waitmsg KEY [TEXT]   the same, waiting for the bot's reply
/pic_sysphoto KEY [N]      a menu's camera button, N pictures taken (default 1)
/pic_photo_or_album KEY [N]    a menu's camera-or-album button
/pic_weixin KEY [N]        a menu's WeChat-album button
/location_select KEY LAT LNG [LABEL]   a menu's location-picker button
/scan KEY                  scan a QR code while following (SCAN event)
/location LAT LNG [LABEL]  send a location
/image [URL]               send a picture
/voice [recognised text]   send a voice message
/video, /shortvideo        send a video (a short one)
/file [NAME]               send a file (default report.pdf)
/link TITLE URL            share a link
/as OPENID                 continue as another user (a follower unless they unsubscribed)
/menu                      the account's menu, each button with the command it sends
/templates [add ID [TITLE]]    the account's message templates; add one
/help                      this list
/quit                      leave";

/// A message or event the simulated user sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A `text` message.
    Text(String),
    /// The `subscribe` event; with a QR scene, EventKey `qrscene_<scene>` and a Ticket.
    Subscribe(Option<String>),
    /// The `unsubscribe` event.
    Unsubscribe,
    /// The `CLICK` menu event with its EventKey.
    Click(String),
    /// The `VIEW` menu event with the URL as EventKey.
    View(String),
    /// The `SCAN` event of a follower scanning a QR code.
    Scan(String),
    /// A `location` message.
    Location {
        /// Location_X (latitude), as typed.
        lat: String,
        /// Location_Y (longitude), as typed.
        lng: String,
        /// Label, empty when not given.
        label: String,
    },
    /// An `image` message with this PicUrl.
    Image(String),
    /// A `voice` message with this Recognition (speech recognition result).
    Voice(String),
    /// A `link` message.
    Link {
        /// Title.
        title: String,
        /// Url.
        url: String,
    },
    /// A menu's scan button: `scancode_push` or `scancode_waitmsg`, with ScanCodeInfo.
    MenuScan {
        /// The event name.
        event: &'static str,
        /// The button's key.
        key: String,
        /// ScanResult: what the code said.
        result: String,
    },
    /// A menu's picture button: `pic_sysphoto`, `pic_photo_or_album` or `pic_weixin`, with
    /// SendPicsInfo.
    MenuPics {
        /// The event name.
        event: &'static str,
        /// The button's key.
        key: String,
        /// How many pictures were chosen.
        count: u32,
    },
    /// A menu's location picker (`location_select`), with SendLocationInfo.
    LocationSelect {
        /// The button's key.
        key: String,
        /// Location_X (latitude), as typed.
        lat: String,
        /// Location_Y (longitude), as typed.
        lng: String,
        /// Label, empty when not given.
        label: String,
    },
    /// A `video` message, or a `shortvideo` one.
    Video {
        /// `shortvideo` rather than `video`.
        short: bool,
    },
    /// A `file` message with this Title.
    File(String),
}

/// What `/templates` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatesCommand {
    /// List the account's templates.
    List,
    /// Add a template with this id and title.
    Add {
        /// The template_id scripts send with.
        id: String,
        /// Its title, shown in the list.
        title: String,
    },
}

/// One typed line, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Send this to the bot.
    Send(Inbound),
    /// Continue as another user (`/as`).
    SwitchUser(String),
    /// Show the commands.
    Help,
    /// Show the account's menu (`/menu`).
    ShowMenu,
    /// List or add message templates (`/templates`).
    Templates(TemplatesCommand),
    /// Leave.
    Quit,
    /// Nothing to do (a blank line).
    Nothing,
    /// A command that was misspelt or misused: show this one-line hint.
    Hint(String),
}

/// The PicUrl of `/image` without a URL.
pub const DEFAULT_PIC_URL: &str = "https://example.com/chat.jpg";
/// The ScanResult of `/scancode_push` and `/scancode_waitmsg` without one.
pub const DEFAULT_SCAN_RESULT: &str = "https://example.com/scanned";
/// The Title of `/file` without a name.
pub const DEFAULT_FILE_NAME: &str = "report.pdf";
/// Most pictures a picture button sends at once (WeChat's limit).
const MAX_PICS: u32 = 9;

/// Latitude and longitude as typed, when both are finite numbers.
fn coordinates<'a>(lat: &'a str, lng: &'a str) -> Option<(String, String)> {
    let finite = |v: &str| v.parse::<f64>().is_ok_and(f64::is_finite);
    (finite(lat) && finite(lng)).then(|| (lat.to_string(), lng.to_string()))
}

/// Understands one typed line.
pub fn parse(line: &str) -> Input {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    if let Some(literal) = line.strip_prefix("//") {
        return Input::Send(Inbound::Text(format!("/{literal}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Input::Send(Inbound::Text(line.to_string()));
    };
    let (name, rest) = match command.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (command, ""),
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let usage = |text: &str| Input::Hint(format!("usage: {text}"));
    match name {
        "subscribe" => Input::Send(Inbound::Subscribe(
            (!rest.is_empty()).then(|| rest.to_string()),
        )),
        "unsubscribe" => Input::Send(Inbound::Unsubscribe),
        "click" if !rest.is_empty() => Input::Send(Inbound::Click(rest.to_string())),
        "click" => usage("/click KEY"),
        "view" if !rest.is_empty() => Input::Send(Inbound::View(rest.to_string())),
        "view" => usage("/view URL"),
        "scan" if !rest.is_empty() => Input::Send(Inbound::Scan(rest.to_string())),
        "scan" => usage("/scan KEY"),
        "scancode_push" | "scancode_waitmsg" => match words.split_first() {
            Some((key, result)) => Input::Send(Inbound::MenuScan {
                event: if name == "scancode_push" {
                    "scancode_push"
                } else {
                    "scancode_waitmsg"
                },
                key: key.to_string(),
                result: if result.is_empty() {
                    DEFAULT_SCAN_RESULT.to_string()
                } else {
                    result.join(" ")
                },
            }),
            None => usage(&format!("/{name} KEY [TEXT]")),
        },
        "pic_sysphoto" | "pic_photo_or_album" | "pic_weixin" => {
            let event = match name {
                "pic_sysphoto" => "pic_sysphoto",
                "pic_photo_or_album" => "pic_photo_or_album",
                _ => "pic_weixin",
            };
            let count = match words.as_slice() {
                [_] => Some(1),
                [_, n] => n.parse::<u32>().ok().filter(|n| (1..=MAX_PICS).contains(n)),
                _ => None,
            };
            match (words.first(), count) {
                (Some(key), Some(count)) => Input::Send(Inbound::MenuPics {
                    event,
                    key: key.to_string(),
                    count,
                }),
                _ => usage(&format!("/{name} KEY [N], N pictures from 1 to {MAX_PICS}")),
            }
        }
        "location_select" => match words.as_slice() {
            [key, lat, lng, label @ ..] if coordinates(lat, lng).is_some() => {
                Input::Send(Inbound::LocationSelect {
                    key: key.to_string(),
                    lat: lat.to_string(),
                    lng: lng.to_string(),
                    label: label.join(" "),
                })
            }
            _ => usage("/location_select KEY LAT LNG [LABEL], e.g. /location_select PICK 23.13 113.36 Canton Tower"),
        },
        "video" => Input::Send(Inbound::Video { short: false }),
        "shortvideo" => Input::Send(Inbound::Video { short: true }),
        "file" => Input::Send(Inbound::File(if rest.is_empty() {
            DEFAULT_FILE_NAME.to_string()
        } else {
            rest.to_string()
        })),
        "menu" => Input::ShowMenu,
        "templates" => match words.as_slice() {
            [] => Input::Templates(TemplatesCommand::List),
            ["add", id, title @ ..] => Input::Templates(TemplatesCommand::Add {
                id: id.to_string(),
                title: if title.is_empty() {
                    format!("template {id}")
                } else {
                    title.join(" ")
                },
            }),
            _ => usage("/templates, or /templates add TEMPLATE_ID [TITLE]"),
        },
        "location" => match words.as_slice() {
            [lat, lng, label @ ..] if coordinates(lat, lng).is_some() => {
                Input::Send(Inbound::Location {
                    lat: lat.to_string(),
                    lng: lng.to_string(),
                    label: label.join(" "),
                })
            }
            _ => usage("/location LAT LNG [LABEL], e.g. /location 23.13 113.36 Canton Tower"),
        },
        "image" => Input::Send(Inbound::Image(if rest.is_empty() {
            DEFAULT_PIC_URL.to_string()
        } else {
            rest.to_string()
        })),
        "voice" => Input::Send(Inbound::Voice(rest.to_string())),
        "link" => match words.split_last() {
            Some((url, title)) if !title.is_empty() => Input::Send(Inbound::Link {
                title: title.join(" "),
                url: url.to_string(),
            }),
            _ => usage("/link TITLE URL"),
        },
        "as" => match words.as_slice() {
            [openid] => Input::SwitchUser(openid.to_string()),
            _ => usage("/as OPENID"),
        },
        "help" | "?" => Input::Help,
        "quit" | "exit" | "q" => Input::Quit,
        other => Input::Hint(format!(
            "unknown command /{other}: /help lists the commands (start with // to send text beginning with /)"
        )),
    }
}

/// The `MediaId` of the picture, voice or video sent as message `msg_id`.
pub fn media_id(msg_id: u64) -> String {
    format!("chat_media_{msg_id}")
}

impl Inbound {
    /// Whether WeChat gives this a MsgId (messages do, events do not).
    pub fn is_message(&self) -> bool {
        !matches!(
            self,
            Inbound::Subscribe(_)
                | Inbound::Unsubscribe
                | Inbound::Click(_)
                | Inbound::View(_)
                | Inbound::Scan(_)
                | Inbound::MenuScan { .. }
                | Inbound::MenuPics { .. }
                | Inbound::LocationSelect { .. }
        )
    }

    /// The file a message of this kind carries as its `MediaId`, which the chat keeps in its
    /// fake API under [`media_id`] so `wx.media.get(msg.media_id)` works as on WeChat:
    /// (media type, file name, content type, a small placeholder content).
    pub fn sent_media(&self) -> Option<(&'static str, &'static str, &'static str, &'static [u8])> {
        match self {
            Inbound::Image(_) => Some(("image", "photo.jpg", "image/jpeg", b"chat: a picture")),
            Inbound::Voice(_) => Some(("voice", "voice.amr", "audio/amr", b"#!AMR\nchat: a voice")),
            Inbound::Video { .. } => Some(("video", "video.mp4", "video/mp4", b"chat: a video")),
            _ => None,
        }
    }

    /// The XML WeChat would POST: from `user` to the account `account`, at `create_time`;
    /// `msg_id` is used by messages only, and also seeds the made-up MediaId and Ticket.
    pub fn to_xml(&self, user: &str, account: &str, create_time: i64, msg_id: u64) -> String {
        let mut out = String::with_capacity(320);
        out.push_str("<xml>");
        element(&mut out, "ToUserName", account);
        element(&mut out, "FromUserName", user);
        let _ = write!(out, "<CreateTime>{create_time}</CreateTime>");
        let media_id = media_id(msg_id);
        let ticket = format!("chat_ticket_{msg_id}");
        match self {
            Inbound::Text(content) => {
                element(&mut out, "MsgType", "text");
                element(&mut out, "Content", content);
            }
            Inbound::Subscribe(scene) => {
                event(&mut out, "subscribe");
                if let Some(scene) = scene {
                    element(&mut out, "EventKey", &format!("qrscene_{scene}"));
                    element(&mut out, "Ticket", &ticket);
                }
            }
            Inbound::Unsubscribe => event(&mut out, "unsubscribe"),
            Inbound::Click(key) => {
                event(&mut out, "CLICK");
                element(&mut out, "EventKey", key);
            }
            Inbound::View(url) => {
                event(&mut out, "VIEW");
                element(&mut out, "EventKey", url);
            }
            Inbound::Scan(key) => {
                event(&mut out, "SCAN");
                element(&mut out, "EventKey", key);
                element(&mut out, "Ticket", &ticket);
            }
            Inbound::Location { lat, lng, label } => {
                element(&mut out, "MsgType", "location");
                let _ = write!(
                    out,
                    "<Location_X>{lat}</Location_X><Location_Y>{lng}</Location_Y><Scale>15</Scale>"
                );
                element(&mut out, "Label", label);
            }
            Inbound::Image(pic_url) => {
                element(&mut out, "MsgType", "image");
                element(&mut out, "PicUrl", pic_url);
                element(&mut out, "MediaId", &media_id);
            }
            Inbound::Voice(recognition) => {
                element(&mut out, "MsgType", "voice");
                element(&mut out, "MediaId", &media_id);
                element(&mut out, "Format", "amr");
                element(&mut out, "Recognition", recognition);
            }
            Inbound::Link { title, url } => {
                element(&mut out, "MsgType", "link");
                element(&mut out, "Title", title);
                element(&mut out, "Description", "");
                element(&mut out, "Url", url);
            }
            Inbound::MenuScan {
                event: name,
                key,
                result,
            } => {
                event(&mut out, name);
                element(&mut out, "EventKey", key);
                out.push_str("<ScanCodeInfo>");
                element(&mut out, "ScanType", "qrcode");
                element(&mut out, "ScanResult", result);
                out.push_str("</ScanCodeInfo>");
            }
            Inbound::MenuPics {
                event: name,
                key,
                count,
            } => {
                event(&mut out, name);
                element(&mut out, "EventKey", key);
                let _ = write!(out, "<SendPicsInfo><Count>{count}</Count><PicList>");
                for i in 0..*count {
                    out.push_str("<item>");
                    // A made-up MD5 per picture: 32 hex digits, different for each.
                    element(
                        &mut out,
                        "PicMd5Sum",
                        &format!("{:032x}", msg_id * 16 + u64::from(i)),
                    );
                    out.push_str("</item>");
                }
                out.push_str("</PicList></SendPicsInfo>");
            }
            Inbound::LocationSelect {
                key,
                lat,
                lng,
                label,
            } => {
                event(&mut out, "location_select");
                element(&mut out, "EventKey", key);
                out.push_str("<SendLocationInfo>");
                element(&mut out, "Location_X", lat);
                element(&mut out, "Location_Y", lng);
                element(&mut out, "Scale", "15");
                element(&mut out, "Label", label);
                element(&mut out, "Poiname", "");
                out.push_str("</SendLocationInfo>");
            }
            Inbound::Video { short } => {
                element(
                    &mut out,
                    "MsgType",
                    if *short { "shortvideo" } else { "video" },
                );
                element(&mut out, "MediaId", &media_id);
                element(&mut out, "ThumbMediaId", &format!("chat_thumb_{msg_id}"));
            }
            Inbound::File(name) => {
                element(&mut out, "MsgType", "file");
                element(&mut out, "Title", name);
                element(&mut out, "Description", "120 KB");
                element(&mut out, "FileKey", &format!("chat_file_{msg_id}"));
                element(&mut out, "FileMd5", &format!("{:032x}", msg_id));
                out.push_str("<FileTotalLen>122880</FileTotalLen>");
            }
        }
        if self.is_message() {
            let _ = write!(out, "<MsgId>{msg_id}</MsgId>");
        }
        out.push_str("</xml>");
        out
    }
}

fn element(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}>");
    push_cdata(out, value);
    let _ = write!(out, "</{name}>");
}

fn event(out: &mut String, name: &str) {
    element(out, "MsgType", "event");
    element(out, "Event", name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::InboundMessage;

    fn sent(line: &str) -> Inbound {
        match parse(line) {
            Input::Send(inbound) => inbound,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn parsed(inbound: &Inbound) -> InboundMessage {
        let xml = inbound.to_xml("o_user", "gh_acct", 1_700_000_000, 77);
        InboundMessage::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{xml}: {e}"))
    }

    #[test]
    fn text_and_the_double_slash_escape() {
        assert_eq!(sent("hi there"), Inbound::Text("hi there".into()));
        assert_eq!(sent("//click x"), Inbound::Text("/click x".into()));
        assert_eq!(parse("   "), Input::Nothing);
        let msg = parsed(&sent("a ]]> b"));
        assert_eq!(msg.content(), Some("a ]]> b"));
        assert_eq!(msg.msg_id(), Some("77"));
        assert_eq!(msg.from_user, "o_user");
    }

    #[test]
    fn events_carry_their_keys_as_wechat_sends_them() {
        let msg = parsed(&sent("/click MENU"));
        assert_eq!(
            (msg.event(), msg.event_key()),
            (Some("click"), Some("MENU"))
        );
        assert_eq!(msg.msg_id(), None);
        let msg = parsed(&sent("/subscribe 42"));
        assert_eq!(msg.event_key(), Some("qrscene_42"));
        let plain = parsed(&sent("/subscribe"));
        assert_eq!(
            (plain.event(), plain.event_key()),
            (Some("subscribe"), None)
        );
        let scan = sent("/scan 7").to_xml("u", "a", 1, 5);
        assert!(scan.contains("<Event><![CDATA[SCAN]]></Event>"), "{scan}");
        assert!(scan.contains("<Ticket>"), "{scan}");
        assert_eq!(parsed(&sent("/view http://x")).event(), Some("view"));
        assert_eq!(parsed(&sent("/unsubscribe")).event(), Some("unsubscribe"));
    }

    #[test]
    fn messages_of_other_types() {
        let loc = sent("/location 23.1 113.3 Canton Tower");
        assert_eq!(
            loc,
            Inbound::Location {
                lat: "23.1".into(),
                lng: "113.3".into(),
                label: "Canton Tower".into()
            }
        );
        assert_eq!(parsed(&loc).msg_type(), "location");
        let link = sent("/link Two words http://x");
        assert_eq!(
            link,
            Inbound::Link {
                title: "Two words".into(),
                url: "http://x".into()
            }
        );
        assert_eq!(sent("/image"), Inbound::Image(DEFAULT_PIC_URL.into()));
        let voice = sent("/voice 你好").to_xml("u", "a", 1, 9);
        assert!(voice.contains("<Recognition><![CDATA[你好]]></Recognition>"));
        assert!(voice.contains("<MediaId><![CDATA[chat_media_9]]></MediaId>"));
    }

    #[test]
    fn every_menu_button_event_carries_its_info_as_wechat_sends_it() {
        let group = |msg: &InboundMessage, name: &str| {
            msg.fields
                .get(name)
                .and_then(|f| f.as_group())
                .cloned()
                .unwrap_or_else(|| panic!("no {name}"))
        };
        for name in ["scancode_push", "scancode_waitmsg"] {
            let msg = parsed(&sent(&format!("/{name} SCAN hello world")));
            assert_eq!((msg.event(), msg.event_key()), (Some(name), Some("SCAN")));
            let info = group(&msg, "ScanCodeInfo");
            assert_eq!(info.text("ScanType"), Some("qrcode"));
            assert_eq!(info.text("ScanResult"), Some("hello world"));
            assert_eq!(msg.msg_id(), None, "an event");
        }
        let default = parsed(&sent("/scancode_push S"));
        assert_eq!(
            group(&default, "ScanCodeInfo").text("ScanResult"),
            Some(DEFAULT_SCAN_RESULT)
        );
        for name in ["pic_sysphoto", "pic_photo_or_album", "pic_weixin"] {
            let msg = parsed(&sent(&format!("/{name} PICS 3")));
            assert_eq!((msg.event(), msg.event_key()), (Some(name), Some("PICS")));
            let info = group(&msg, "SendPicsInfo");
            assert_eq!(info.text("Count"), Some("3"));
            let list = info.get("PicList").and_then(|f| f.as_list()).unwrap();
            assert_eq!(list.len(), 3);
            let sums: Vec<&str> = list
                .iter()
                .map(|item| item.as_group().unwrap().text("PicMd5Sum").unwrap())
                .collect();
            assert!(sums.iter().all(|s| s.len() == 32), "{sums:?}");
            assert_ne!(sums[0], sums[1]);
        }
        let one = parsed(&sent("/pic_weixin P"));
        assert_eq!(group(&one, "SendPicsInfo").text("Count"), Some("1"));
        let msg = parsed(&sent("/location_select PICK 23.1 113.3 Canton Tower"));
        assert_eq!(
            (msg.event(), msg.event_key()),
            (Some("location_select"), Some("PICK"))
        );
        let info = group(&msg, "SendLocationInfo");
        assert_eq!(info.text("Location_X"), Some("23.1"));
        assert_eq!(info.text("Location_Y"), Some("113.3"));
        assert_eq!(info.text("Label"), Some("Canton Tower"));
    }

    #[test]
    fn video_shortvideo_and_file_messages() {
        for (line, kind) in [("/video", "video"), ("/shortvideo", "shortvideo")] {
            let msg = parsed(&sent(line));
            assert_eq!(msg.msg_type(), kind);
            assert_eq!(msg.fields.text("MediaId"), Some("chat_media_77"));
            assert_eq!(msg.fields.text("ThumbMediaId"), Some("chat_thumb_77"));
            assert_eq!(msg.msg_id(), Some("77"));
        }
        let file = parsed(&sent("/file notes 2024.txt"));
        assert_eq!(file.msg_type(), "file");
        assert_eq!(file.fields.text("Title"), Some("notes 2024.txt"));
        assert_eq!(file.fields.text("FileTotalLen"), Some("122880"));
        assert_eq!(
            parsed(&sent("/file")).fields.text("Title"),
            Some(DEFAULT_FILE_NAME)
        );
    }

    #[test]
    fn session_commands_and_hints() {
        assert_eq!(parse("/as other"), Input::SwitchUser("other".into()));
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/menu"), Input::ShowMenu);
        assert_eq!(
            parse("/templates"),
            Input::Templates(TemplatesCommand::List)
        );
        assert_eq!(
            parse("/templates add T1 Order shipped"),
            Input::Templates(TemplatesCommand::Add {
                id: "T1".into(),
                title: "Order shipped".into()
            })
        );
        assert_eq!(parse("/quit"), Input::Quit);
        for bad in [
            "/click",
            "/location x y",
            "/location 1",
            "/link onlyurl",
            "/as",
            "/as a b",
            "/scancode_push",
            "/pic_weixin",
            "/pic_weixin K 0",
            "/pic_weixin K 10",
            "/pic_weixin K x",
            "/location_select K 1",
            "/location_select 1 2",
            "/templates remove T",
            "/templates add",
        ] {
            assert!(
                matches!(parse(bad), Input::Hint(ref h) if h.starts_with("usage:")),
                "{bad}"
            );
        }
        assert!(matches!(parse("/frobnicate"), Input::Hint(ref h) if h.contains("/frobnicate")));
    }
}
