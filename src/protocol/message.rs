//! Inbound callback messages: turns WeChat's plaintext `<xml>…</xml>` body into a typed
//! [`InboundMessage`]: its kind as a [`MsgType`] (with the [`EventType`] of an event) and
//! accessors for the fields every handler needs. The body is read into the generic field tree
//! of [`xml_fields`](super::xml_fields), and every element stays available as [`Fields`].

// The tree types are part of this API (`InboundMessage::fields`, `InboundMessage::parse`'s
// error).
use bytes::Bytes;

use super::xml_fields::parse_shared_fields;
pub use super::xml_fields::{Field, Fields, ParseError, Text};

/// Declares a kind enum from one list of `Variant => "wire name"`, so a kind WeChat sends is
/// named in exactly one place: the enum (with any variants that carry data, and an `Other`
/// catch-all), the list of its kinds and of their wire names, `as_str`, and the lookup of a
/// listed name. Everything else that names kinds (the `wx.on` check, `check`'s suggestions,
/// metrics labels, the editor types test) is generated from these lists.
macro_rules! wire_kinds {
    (
        $(#[$meta:meta])*
        $name:ident { $($variant:ident => $wire:literal,)* }
        $(#[$kinds_doc:meta])* $kinds:ident,
        $(#[$names_doc:meta])* $names:ident,
        $($(#[$extra_meta:meta])* $extra:ident($extra_ty:ty) => $extra_wire:literal,)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $(
                #[doc = concat!("`", $wire, "`")]
                $variant,
            )*
            $($(#[$extra_meta])* $extra($extra_ty),)*
            /// A value this version does not know, lowercased.
            Other(String),
        }

        impl $name {
            $(#[$kinds_doc])*
            pub const $kinds: &'static [$name] = &[$($name::$variant,)*];

            $(#[$names_doc])*
            pub const $names: &'static [&'static str] = &[$($wire,)*];

            /// Where a listed kind is in the list of kinds (and its wire name in the list of
            /// names); `None` for the rest.
            pub fn position(&self) -> Option<usize> {
                let variant = std::mem::discriminant(self);
                Self::$kinds
                    .iter()
                    .position(|kind| std::mem::discriminant(kind) == variant)
            }

            /// The lowercase wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $($name::$extra(_) => $extra_wire,)*
                    $name::Other(s) => s,
                }
            }

            /// The listed kind called `value`, case-insensitively (WeChat mixes `SCAN` and
            /// `scancode_push`).
            fn listed(value: &str) -> Option<Self> {
                $(
                    if value.eq_ignore_ascii_case($wire) {
                        return Some($name::$variant);
                    }
                )*
                None
            }
        }
    };
}

wire_kinds! {
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
    /// Every event WeChat sends that this version knows by name.
    ALL,
    /// The wire names of [`EventType::ALL`], in the same order (`wx.on("event.<name>")`).
    NAMES,
}

impl EventType {
    /// Classifies an Event value; one this version does not know is [`EventType::Other`].
    pub fn from_wire(value: &str) -> Self {
        Self::listed(value).unwrap_or_else(|| EventType::Other(value.to_ascii_lowercase()))
    }
}

wire_kinds! {
    /// MsgType of an inbound message.
    MsgType {
        Text => "text",
        Image => "image",
        Voice => "voice",
        Video => "video",
        ShortVideo => "shortvideo",
        Location => "location",
        Link => "link",
        MiniProgramPage => "miniprogrampage",
        File => "file",
    }
    /// Every message kind this version knows by name, except `event`, whose kinds are
    /// [`EventType::ALL`].
    MESSAGES,
    /// The wire names of [`MsgType::MESSAGES`], in the same order (`wx.on("<name>")`).
    MESSAGE_NAMES,
    /// `event`, with its Event.
    Event(EventType) => "event",
}

impl MsgType {
    /// Classifies a MsgType; `event` takes its EventType from `event` (the Event field).
    pub fn from_wire(value: &str, event: Option<&str>) -> Self {
        if value.eq_ignore_ascii_case("event") {
            return MsgType::Event(EventType::from_wire(event.unwrap_or("")));
        }
        Self::listed(value).unwrap_or_else(|| MsgType::Other(value.to_ascii_lowercase()))
    }
}

/// One inbound message or event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// ToUserName: the official account's original ID.
    pub to_user: Text,
    /// FromUserName: the user's OpenID.
    pub from_user: Text,
    /// CreateTime, seconds since the Unix epoch.
    pub create_time: i64,
    /// MsgType, with the Event for events.
    pub kind: MsgType,
    /// Every child of `<xml>`, including the ones above, in document order.
    pub fields: Fields,
}

impl InboundMessage {
    /// Parses a plaintext callback body (into one copy of it that the values share).
    pub fn parse(xml: &[u8]) -> Result<Self, ParseError> {
        Self::parse_shared(Bytes::copy_from_slice(xml))
    }

    /// [`InboundMessage::parse`] of a body already in a buffer of its own: every value is a
    /// view into `xml`, which the message keeps alive.
    pub fn parse_shared(xml: Bytes) -> Result<Self, ParseError> {
        let fields = parse_shared_fields(&xml)?;
        let required = |name: &'static str| {
            fields
                .shared_text(name)
                .cloned()
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

    /// The Event, for event messages that carry one (an `event` without an Event element
    /// has none, though its kind is `MsgType::Event(EventType::Other(""))`).
    pub fn event_type(&self) -> Option<&EventType> {
        match &self.kind {
            MsgType::Event(e) if self.fields.get("Event").is_some() => Some(e),
            _ => None,
        }
    }

    /// Lowercase Event, for event messages that carry one.
    pub fn event(&self) -> Option<&str> {
        self.event_type().map(EventType::as_str)
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
        self.dedup_key_display().to_string()
    }

    /// [`InboundMessage::dedup_key`] without building it: written into a formatter (or a
    /// hasher), so the retry cache can find a message without allocating its key.
    pub fn dedup_key_display(&self) -> DedupKey<'_> {
        DedupKey(self)
    }
}

/// A message's de-duplication key, as it is displayed; see [`InboundMessage::dedup_key`].
pub struct DedupKey<'a>(&'a InboundMessage);

impl std::fmt::Display for DedupKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        match (&m.kind, m.msg_id()) {
            (MsgType::Event(e), _) => write!(
                f,
                "{}|{}|{}|{}",
                m.from_user,
                m.create_time,
                e.as_str(),
                m.event_key().unwrap_or("")
            ),
            (_, Some(id)) => write!(f, "{}|{}", m.from_user, id),
            // No documented message lacks MsgId; fall back to what identifies an event.
            (kind, None) => write!(f, "{}|{}|{}|", m.from_user, m.create_time, kind.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::xml_fields::parse_fields;

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
    fn every_listed_kind_round_trips_under_its_one_name() {
        assert_eq!(EventType::ALL.len(), EventType::NAMES.len());
        for (kind, name) in EventType::ALL.iter().zip(EventType::NAMES) {
            assert_eq!(kind.as_str(), *name);
            assert_eq!(&EventType::from_wire(name), kind);
            assert_eq!(&EventType::from_wire(&name.to_uppercase()), kind);
        }
        assert_eq!(MsgType::MESSAGES.len(), MsgType::MESSAGE_NAMES.len());
        for (at, kind) in MsgType::MESSAGES.iter().enumerate() {
            assert_eq!(kind.position(), Some(at));
        }
        for (at, kind) in EventType::ALL.iter().enumerate() {
            assert_eq!(kind.position(), Some(at));
        }
        assert_eq!(MsgType::Other("x".into()).position(), None);
        assert_eq!(MsgType::Event(EventType::Click).position(), None);
        assert_eq!(EventType::Other("x".into()).position(), None);
        for (kind, name) in MsgType::MESSAGES.iter().zip(MsgType::MESSAGE_NAMES) {
            assert_eq!(kind.as_str(), *name);
            assert_eq!(&MsgType::from_wire(name, None), kind);
            assert_eq!(&MsgType::from_wire(&name.to_uppercase(), None), kind);
        }
        assert!(!MsgType::MESSAGE_NAMES.contains(&"event"));
        let mut names: Vec<&str> = EventType::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::NAMES.len(), "an event listed twice");
    }

    #[test]
    fn event_without_event_field_is_kept_as_other() {
        let m = InboundMessage::parse(&doc("<MsgType>event</MsgType>")).unwrap();
        assert_eq!(m.kind, MsgType::Event(EventType::Other(String::new())));
        assert_eq!(m.msg_type(), "event");
        assert_eq!(m.event(), None);
        assert_eq!(m.event_type(), None);
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

    /// The three shapes of the key: by MsgId; an event by sender, time, event and key; a
    /// message without MsgId by sender, time and kind.
    #[test]
    fn dedup_keys_of_every_shape() {
        let click = InboundMessage::parse(
            format!("{HEAD}<MsgType>event</MsgType><Event>CLICK</Event><EventKey>V1001</EventKey></xml>")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(click.dedup_key(), "oUser|1700000000|click|V1001");
        let no_id = InboundMessage::parse(
            format!("{HEAD}<MsgType>text</MsgType><Content>hi</Content></xml>").as_bytes(),
        )
        .unwrap();
        assert_eq!(no_id.dedup_key(), "oUser|1700000000|text|");
    }
}
