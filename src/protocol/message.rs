//! Inbound callback messages: turns WeChat's plaintext `<xml>…</xml>` body into a typed
//! [`InboundMessage`]: its kind as a [`MsgType`] (with the [`EventType`] of an event) and
//! accessors for the fields every handler needs. The body is read into the generic field tree
//! of [`xml_fields`](super::xml_fields), and every element stays available as [`Fields`].

// The tree types are part of this API (`InboundMessage::fields`, `InboundMessage::parse`'s
// error); `parse_fields` is here too because `server/` still reads the safe-mode envelope
// through this path.
pub use super::xml_fields::{parse_fields, Field, Fields, ParseError};

/// Declares a wire-name enum with an `Other` catch-all, its `as_str` and its parser.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $(
                #[doc = concat!("`", $wire, "`")]
                $variant,
            )*
            /// A value this version does not know, lowercased.
            Other(String),
        }

        impl $name {
            /// The lowercase wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Other(s) => s,
                }
            }

            /// Classifies a wire value, case-insensitively (WeChat mixes `SCAN` and `scancode_push`).
            pub fn from_wire(value: &str) -> Self {
                $(
                    if value.eq_ignore_ascii_case($wire) {
                        return $name::$variant;
                    }
                )*
                $name::Other(value.to_ascii_lowercase())
            }
        }
    };
}

wire_enum! {
    /// Event of an `event` message.
    EventType {
        Subscribe => "subscribe",
        Unsubscribe => "unsubscribe",
        Scan => "scan",
        Location => "location",
        Click => "click",
        View => "view",
        ScancodePush => "scancode_push",
        ScancodeWaitmsg => "scancode_waitmsg",
        PicSysphoto => "pic_sysphoto",
        PicPhotoOrAlbum => "pic_photo_or_album",
        PicWeixin => "pic_weixin",
        LocationSelect => "location_select",
        ViewMiniprogram => "view_miniprogram",
        MassSendJobFinish => "masssendjobfinish",
        TemplateSendJobFinish => "templatesendjobfinish",
        PublishJobFinish => "publishjobfinish",
        SubscribeMsgPopupEvent => "subscribe_msg_popup_event",
        SubscribeMsgChangeEvent => "subscribe_msg_change_event",
        SubscribeMsgSentEvent => "subscribe_msg_sent_event",
        KfCreateSession => "kf_create_session",
        KfCloseSession => "kf_close_session",
        KfSwitchSession => "kf_switch_session",
    }
}

/// MsgType of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgType {
    /// `text`
    Text,
    /// `image`
    Image,
    /// `voice`
    Voice,
    /// `video`
    Video,
    /// `shortvideo`
    ShortVideo,
    /// `location`
    Location,
    /// `link`
    Link,
    /// `miniprogrampage`
    MiniProgramPage,
    /// `file`
    File,
    /// `event`, with its Event.
    Event(EventType),
    /// A MsgType this version does not know, lowercased.
    Other(String),
}

impl MsgType {
    /// The lowercase wire name (`"event"` for every event).
    pub fn as_str(&self) -> &str {
        match self {
            MsgType::Text => "text",
            MsgType::Image => "image",
            MsgType::Voice => "voice",
            MsgType::Video => "video",
            MsgType::ShortVideo => "shortvideo",
            MsgType::Location => "location",
            MsgType::Link => "link",
            MsgType::MiniProgramPage => "miniprogrampage",
            MsgType::File => "file",
            MsgType::Event(_) => "event",
            MsgType::Other(s) => s,
        }
    }

    /// Classifies a MsgType; `event` takes its EventType from `event` (the Event field).
    pub fn from_wire(value: &str, event: Option<&str>) -> Self {
        const PLAIN: [(&str, MsgType); 9] = [
            ("text", MsgType::Text),
            ("image", MsgType::Image),
            ("voice", MsgType::Voice),
            ("video", MsgType::Video),
            ("shortvideo", MsgType::ShortVideo),
            ("location", MsgType::Location),
            ("link", MsgType::Link),
            ("miniprogrampage", MsgType::MiniProgramPage),
            ("file", MsgType::File),
        ];
        if value.eq_ignore_ascii_case("event") {
            return MsgType::Event(EventType::from_wire(event.unwrap_or("")));
        }
        PLAIN
            .iter()
            .find(|(wire, _)| value.eq_ignore_ascii_case(wire))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| MsgType::Other(value.to_ascii_lowercase()))
    }
}

/// One inbound message or event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// ToUserName: the official account's original ID.
    pub to_user: String,
    /// FromUserName: the user's OpenID.
    pub from_user: String,
    /// CreateTime, seconds since the Unix epoch.
    pub create_time: i64,
    /// MsgType, with the Event for events.
    pub kind: MsgType,
    /// Every child of `<xml>`, including the ones above, in document order.
    pub fields: Fields,
}

impl InboundMessage {
    /// Parses a plaintext callback body.
    pub fn parse(xml: &[u8]) -> Result<Self, ParseError> {
        let fields = parse_fields(xml)?;
        let required = |name: &'static str| {
            fields
                .text(name)
                .map(str::to_owned)
                .ok_or(ParseError::MissingField(name))
        };
        let to_user = required("ToUserName")?;
        let from_user = required("FromUserName")?;
        let raw_time = fields
            .text("CreateTime")
            .ok_or(ParseError::MissingField("CreateTime"))?;
        let create_time = raw_time
            .trim()
            .parse::<i64>()
            .map_err(|_| ParseError::InvalidField {
                name: "CreateTime",
                value: raw_time.to_owned(),
            })?;
        let msg_type = fields
            .text("MsgType")
            .ok_or(ParseError::MissingField("MsgType"))?;
        let kind = MsgType::from_wire(msg_type.trim(), fields.text("Event").map(str::trim));
        Ok(InboundMessage {
            to_user,
            from_user,
            create_time,
            kind,
            fields,
        })
    }

    /// Lowercase MsgType (`"event"` for events).
    pub fn msg_type(&self) -> &str {
        self.kind.as_str()
    }

    /// Lowercase Event, for event messages that carry one.
    pub fn event(&self) -> Option<&str> {
        match &self.kind {
            MsgType::Event(e) if self.fields.get("Event").is_some() => Some(e.as_str()),
            _ => None,
        }
    }

    /// MsgId, or MsgID (MASSSENDJOBFINISH and subscribe_msg_sent_event spell it so).
    pub fn msg_id(&self) -> Option<&str> {
        self.fields
            .text("MsgId")
            .or_else(|| self.fields.text("MsgID"))
    }

    /// Content of a text message.
    pub fn content(&self) -> Option<&str> {
        self.fields.text("Content")
    }

    /// EventKey of an event (menu key, `qrscene_…` scene, …).
    pub fn event_key(&self) -> Option<&str> {
        self.fields.text("EventKey")
    }

    /// Key that identifies WeChat's retries of this message: FromUserName + MsgId for messages,
    /// FromUserName + CreateTime + Event + EventKey for events (MsgId alone collides across users).
    pub fn dedup_key(&self) -> String {
        match (&self.kind, self.msg_id()) {
            (MsgType::Event(e), _) => format!(
                "{}|{}|{}|{}",
                self.from_user,
                self.create_time,
                e.as_str(),
                self.event_key().unwrap_or("")
            ),
            (_, Some(id)) => format!("{}|{}", self.from_user, id),
            // No documented message lacks MsgId; fall back to what identifies an event.
            (kind, None) => format!("{}|{}|{}|", self.from_user, self.create_time, kind.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName>\
        <FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1700000000</CreateTime>";

    fn doc(rest: &str) -> Vec<u8> {
        format!("{HEAD}{rest}</xml>").into_bytes()
    }

    fn text_msg(content_xml: &str) -> InboundMessage {
        InboundMessage::parse(&doc(&format!(
            "<MsgType><![CDATA[text]]></MsgType><Content>{content_xml}</Content><MsgId>1</MsgId>"
        )))
        .unwrap()
    }

    #[test]
    fn wire_names_round_trip() {
        for e in [
            EventType::Subscribe,
            EventType::Scan,
            EventType::ScancodeWaitmsg,
            EventType::PicPhotoOrAlbum,
            EventType::MassSendJobFinish,
            EventType::TemplateSendJobFinish,
            EventType::SubscribeMsgSentEvent,
            EventType::KfSwitchSession,
        ] {
            assert_eq!(EventType::from_wire(e.as_str()), e);
            assert_eq!(EventType::from_wire(&e.as_str().to_uppercase()), e);
        }
        assert_eq!(
            EventType::from_wire("NewThing"),
            EventType::Other("newthing".into())
        );
        assert_eq!(MsgType::from_wire("ShortVideo", None), MsgType::ShortVideo);
        assert_eq!(
            MsgType::from_wire("miniprogrampage", None).as_str(),
            "miniprogrampage"
        );
        assert_eq!(
            MsgType::from_wire("EVENT", Some("CLICK")),
            MsgType::Event(EventType::Click)
        );
    }

    #[test]
    fn event_without_event_field_is_kept_as_other() {
        let m = InboundMessage::parse(&doc("<MsgType>event</MsgType>")).unwrap();
        assert_eq!(m.kind, MsgType::Event(EventType::Other(String::new())));
        assert_eq!(m.msg_type(), "event");
        assert_eq!(m.event(), None);
    }

    #[test]
    fn plain_text_and_cdata_are_equivalent() {
        let m = InboundMessage::parse(
            b"<xml><ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName>\
              <CreateTime> 1700000000 </CreateTime><MsgType>Text</MsgType><Content>hi</Content></xml>",
        )
        .unwrap();
        assert_eq!(m.to_user, "gh_1");
        assert_eq!(m.create_time, 1700000000);
        assert_eq!(m.kind, MsgType::Text);
        assert_eq!(m.content(), Some("hi"));
    }

    #[test]
    fn whitespace_around_cdata_is_trimmed_for_every_element_and_cdata_kept_exactly() {
        let m = InboundMessage::parse(
            b"<xml><ToUserName> <![CDATA[gh_1]]>\n</ToUserName>\
              <FromUserName> <![CDATA[oX]]> </FromUserName>\
              <CreateTime>\n 1700000000 \n</CreateTime><MsgType> <![CDATA[event]]> </MsgType>\
              <Event>\t<![CDATA[CLICK]]>\t</Event><EventKey>\n  <![CDATA[ k ]]>  \n</EventKey>\
              <MenuId>  7 </MenuId></xml>",
        )
        .unwrap();
        assert_eq!(m.from_user, "oX");
        assert_eq!(m.to_user, "gh_1");
        assert_eq!(m.create_time, 1700000000);
        assert_eq!(m.event(), Some("click"));
        assert_eq!(
            m.event_key(),
            Some(" k "),
            "inside CDATA stays byte for byte"
        );
        assert_eq!(m.fields.text("MenuId"), Some("7"));
        assert_eq!(m.fields.text("FromUserName"), Some("oX"));
        for (inner, want) in [
            (" a <![CDATA[ b ]]> c ", "a  b  c"),
            (" <![CDATA[]]>  ", ""),
            ("&#32;a&#32; ", " a "),
            (" <![CDATA[ x]]>&amp; ", " x&"),
            ("<![CDATA[\n]]> \n <![CDATA[\t]]>", "\n \n \t"),
        ] {
            assert_eq!(text_msg(inner).content(), Some(want), "{inner:?}");
        }
    }

    #[test]
    fn empty_elements_are_empty_text() {
        for key in [
            "<EventKey></EventKey>",
            "<EventKey/>",
            "<EventKey />",
            "<EventKey><![CDATA[]]></EventKey>",
        ] {
            let m = InboundMessage::parse(&doc(&format!(
                "<MsgType>event</MsgType><Event>subscribe</Event>{key}"
            )))
            .unwrap();
            assert_eq!(m.event_key(), Some(""), "{key}");
            assert_eq!(m.dedup_key(), "oUser|1700000000|subscribe|");
        }
    }

    #[test]
    fn parse_fields_reads_safe_mode_envelope() {
        let fields = parse_fields(
            b"<?xml version=\"1.0\"?>\n<!-- safe mode -->\n<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n  <Encrypt><![CDATA[c2VjcmV0]]></Encrypt>\n</xml>\n",
        )
        .unwrap();
        assert_eq!(fields.text("Encrypt"), Some("c2VjcmV0"));
        assert_eq!(fields.len(), 2);
        assert!(parse_fields(b"<xml/>").unwrap().is_empty());
        // Safe-mode envelopes lack MsgType, so only `parse` insists on it.
        assert_eq!(
            InboundMessage::parse(b"<xml><Encrypt>x</Encrypt></xml>"),
            Err(ParseError::MissingField("ToUserName"))
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let full = [
            ("ToUserName", "<ToUserName>a</ToUserName>"),
            ("FromUserName", "<FromUserName>b</FromUserName>"),
            ("CreateTime", "<CreateTime>1</CreateTime>"),
            ("MsgType", "<MsgType>text</MsgType>"),
        ];
        for (missing, _) in full {
            let body: String = full
                .iter()
                .filter(|(n, _)| *n != missing)
                .map(|(_, x)| *x)
                .collect();
            let err = InboundMessage::parse(format!("<xml>{body}</xml>").as_bytes()).unwrap_err();
            assert_eq!(err, ParseError::MissingField(missing));
        }
        // A group where text is required counts as missing text.
        let err = InboundMessage::parse(&doc("<MsgType><X>1</X></MsgType>")).unwrap_err();
        assert_eq!(err, ParseError::MissingField("MsgType"));
    }

    #[test]
    fn bad_create_time_is_invalid() {
        for bad in ["", "soon", "1.5", "99999999999999999999", "0x10"] {
            let xml = format!(
                "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>\
                 <CreateTime>{bad}</CreateTime><MsgType>text</MsgType></xml>"
            );
            assert_eq!(
                InboundMessage::parse(xml.as_bytes()),
                Err(ParseError::InvalidField {
                    name: "CreateTime",
                    value: bad.into()
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn dedup_key_separates_users_with_the_same_msg_id() {
        let a = text_msg("hi");
        let mut b = a.clone();
        b.from_user = "oOther".into();
        assert_ne!(a.dedup_key(), b.dedup_key());
        assert_eq!(a.dedup_key(), "oUser|1");
    }
}
