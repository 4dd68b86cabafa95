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
/scan KEY                  scan a QR code while following (SCAN event)
/location LAT LNG [LABEL]  send a location
/image [URL]               send a picture
/voice [recognised text]   send a voice message
/link TITLE URL            share a link
/as OPENID                 continue as another user
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
    /// Leave.
    Quit,
    /// Nothing to do (a blank line).
    Nothing,
    /// A command that was misspelt or misused: show this one-line hint.
    Hint(String),
}

/// The PicUrl of `/image` without a URL.
pub const DEFAULT_PIC_URL: &str = "https://example.com/chat.jpg";

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
        "location" => match words.as_slice() {
            [lat, lng, label @ ..]
                if lat.parse::<f64>().is_ok_and(f64::is_finite)
                    && lng.parse::<f64>().is_ok_and(f64::is_finite) =>
            {
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
        )
    }

    /// The XML WeChat would POST: from `user` to the account `account`, at `create_time`;
    /// `msg_id` is used by messages only, and also seeds the made-up MediaId and Ticket.
    pub fn to_xml(&self, user: &str, account: &str, create_time: i64, msg_id: u64) -> String {
        let mut out = String::with_capacity(320);
        out.push_str("<xml>");
        element(&mut out, "ToUserName", account);
        element(&mut out, "FromUserName", user);
        let _ = write!(out, "<CreateTime>{create_time}</CreateTime>");
        let media_id = format!("chat_media_{msg_id}");
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
    fn session_commands_and_hints() {
        assert_eq!(parse("/as other"), Input::SwitchUser("other".into()));
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/quit"), Input::Quit);
        for bad in [
            "/click",
            "/location x y",
            "/location 1",
            "/link onlyurl",
            "/as",
            "/as a b",
        ] {
            assert!(
                matches!(parse(bad), Input::Hint(ref h) if h.starts_with("usage:")),
                "{bad}"
            );
        }
        assert!(matches!(parse("/frobnicate"), Input::Hint(ref h) if h.contains("/frobnicate")));
    }
}
