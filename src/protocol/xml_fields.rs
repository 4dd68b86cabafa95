//! The generic field tree of a WeChat `<xml>…</xml>` body: every element kept, in order, as
//! [`Fields`], and the one parser that builds it. It knows nothing of message kinds: the
//! typed message on top of it is [`InboundMessage`](super::message::InboundMessage), and
//! safe mode reads its `Encrypt` envelope with the same parser.
//!
//! Shape rules, so scripts can rely on them: a leaf element is [`Field::Text`] (empty for
//! `<X/>`); an element with children is a [`Field::Group`], except that one whose children
//! are all `<item>` is a [`Field::List`] of them. A name repeated among siblings becomes one
//! List in the first one's place, and `<item>` beside other children is always a List, even
//! when WeChat sends just one. The lists WeChat documents ([`ITEM_LISTS`],
//! [`REPEATED_LISTS`]) are Lists whatever their count: one item is a List of one, none an
//! empty List.
//!
//! Tolerance, as every peer SDK has it: text beside child elements (a stray comment line in
//! documented samples, the old `webwx_msg_cli_ver_0x1` marker) is ignored, and whitespace
//! around a value outside CDATA is trimmed for every element; what is inside CDATA, and
//! characters written as references, are kept byte for byte.
//!
//! The parser is a single pass over quick-xml's borrowed events with an explicit stack, so
//! hostile input is bounded by [`MAX_DEPTH`] and [`MAX_ELEMENTS`] instead of recursion, and
//! DTDs are refused outright rather than expanded.
//!
//! A value is a [`Text`]: a view into the body it was read from, shared rather than copied,
//! so a message's half-dozen values cost no allocation each; only a value pieced together
//! (text around an entity, several CDATA sections) owns its own bytes.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

pub use super::text::Text;

/// Deepest element nesting accepted, counting `<xml>` as 1; WeChat's deepest documented
/// message (PUBLISHJOBFINISH) needs 5.
pub const MAX_DEPTH: usize = 16;

/// Most elements accepted in one document; keeps repeat-merging and memory bounded.
pub const MAX_ELEMENTS: usize = 4096;

/// Elements WeChat documents as a list of `<item>`s: the element itself is a [`Field::List`],
/// empty when it has no `<item>` (`<PicList></PicList>`). PicList: the pic_* menu events;
/// ResultList: MASSSENDJOBFINISH's CopyrightCheckResult and ArticleUrlResult.
pub const ITEM_LISTS: &[&str] = &["PicList", "ResultList"];

/// Elements WeChat documents as repeated inside a parent, as (parent, element): inside that
/// parent the element is always a [`Field::List`], an empty one when the parent has none.
pub const REPEATED_LISTS: &[(&str, &str)] = &[
    // subscribe_msg_popup_event / _change_event / _sent_event: one <List> per template.
    ("SubscribeMsgPopupEvent", "List"),
    ("SubscribeMsgChangeEvent", "List"),
    ("SubscribeMsgSentEvent", "List"),
    // PUBLISHJOBFINISH: the indexes of the articles that failed, and the published articles.
    ("PublishEventInfo", "fail_idx"),
    ("article_detail", "item"),
    // ShakearoundUserShake: the beacons around the user.
    ("AroundBeacons", "AroundBeacon"),
];

/// Why an inbound body could not be parsed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The body held a `<!DOCTYPE …>`; refused so no DTD or entity is ever expanded.
    #[error("document type declarations are not accepted")]
    DocType,
    /// The body is well-formed as far as it goes but is not a WeChat `<xml>` document.
    #[error("not a WeChat <xml> document: {0}")]
    NotXml(&'static str),
    /// The body is not well-formed XML (or not UTF-8).
    #[error("malformed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset where the problem was noticed.
        position: u64,
        /// What was wrong.
        message: String,
    },
    /// A field every message carries is absent or not plain text.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// A required field is present but its value is unusable.
    #[error("invalid {name}: {value:?}")]
    InvalidField {
        /// WeChat name of the field.
        name: &'static str,
        /// The offending value, as sent.
        value: String,
    },
    /// Elements are nested deeper than [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// The document has more than [`MAX_ELEMENTS`] elements.
    #[error("more than {MAX_ELEMENTS} elements")]
    TooLarge,
}

/// A value inside an inbound message: text, a nested element, or a list of `<item>`s.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// Text content (CDATA or plain, entities resolved); `""` for an empty element.
    Text(Text),
    /// An element with named children.
    Group(Fields),
    /// `<item>` children, or the values of an element name repeated among siblings.
    List(Vec<Field>),
}

impl Field {
    /// The text, if this is a [`Field::Text`].
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Field::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The children, if this is a [`Field::Group`].
    pub fn as_group(&self) -> Option<&Fields> {
        match self {
            Field::Group(g) => Some(g),
            _ => None,
        }
    }

    /// The elements, if this is a [`Field::List`].
    pub fn as_list(&self) -> Option<&[Field]> {
        match self {
            Field::List(l) => Some(l),
            _ => None,
        }
    }
}

/// An element's name. The names every message carries are borrowed from a static table
/// (see `element_name`) rather than copied out of each body.
pub type FieldName = Cow<'static, str>;

/// The children of an element in document order, under their WeChat names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields(pub Vec<(FieldName, Field)>);

impl Fields {
    /// The first child called `name` (exact WeChat spelling).
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }

    /// The text of the child called `name`; `None` if absent or not [`Field::Text`].
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Field::as_text)
    }

    /// [`Fields::text`] as the shared [`Text`], to keep without copying.
    pub fn shared_text(&self, name: &str) -> Option<&Text> {
        match self.get(name)? {
            Field::Text(t) => Some(t),
            _ => None,
        }
    }

    /// Children in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Field)> {
        self.0.iter().map(|(n, f)| (n.as_ref(), f))
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Converts a WeChat element name to the snake_case name scripts see.
pub fn snake_case(name: &str) -> Cow<'_, str> {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(name);
    }
    let mut out = vec![0; 2 * name.len()];
    let len = snake_case_into(name.as_bytes(), 0..name.len(), &mut out);
    out.truncate(len);
    // Only ASCII bytes are changed or added, so what was UTF-8 stays UTF-8.
    Cow::Owned(String::from_utf8(out).expect("snake_case keeps UTF-8 valid"))
}

/// Writes the snake_case form of `name[part]` into `out` (at least twice the part's length)
/// and returns its length; `name` whole is the context a word boundary depends on. Works on
/// bytes, so a long name can be converted a piece at a time into a fixed buffer (the Lua
/// message table does); the bytes of a non-ASCII character are copied unchanged and count as
/// no letter, as the character would.
pub fn snake_case_into(name: &[u8], part: std::ops::Range<usize>, out: &mut [u8]) -> usize {
    let mut len = 0;
    for i in part {
        let c = name[i];
        if c.is_ascii_uppercase() && i > 0 {
            let prev = name[i - 1];
            let next_lower = name.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            // A word starts after a lowercase letter (userName), or at the last capital of
            // an acronym or after digits when a lowercase run follows (HTTPServer, Md5Sum).
            if prev.is_ascii_lowercase()
                || ((prev.is_ascii_uppercase() || prev.is_ascii_digit()) && next_lower)
            {
                out[len] = b'_';
                len += 1;
            }
        }
        out[len] = c.to_ascii_lowercase();
        len += 1;
    }
    len
}

/// Parses any `<xml>` document into its top-level fields (used by safe mode to read `Encrypt`).
/// The values share one copy of `xml`; [`parse_shared_fields`] shares the caller's buffer.
pub fn parse_fields(xml: &[u8]) -> Result<Fields, ParseError> {
    parse_shared_fields(&Bytes::copy_from_slice(xml))
}

/// [`parse_fields`] with each value a view into `source` itself: the values keep the whole
/// buffer alive for as long as any of them lives.
pub fn parse_shared_fields(source: &Bytes) -> Result<Fields, ParseError> {
    let xml: &[u8] = source;
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Frame<'_>> = Vec::with_capacity(4);
    let mut root: Option<Fields> = None;
    let mut elements = 0usize;
    if xml
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Err(ParseError::NotXml("empty body"));
    }

    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| ParseError::Xml {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::DocType(_) => return Err(ParseError::DocType),
            Event::Start(start) | Event::Empty(start)
                if root.is_some() || (stack.is_empty() && start.name().as_ref() != b"xml") =>
            {
                return Err(ParseError::NotXml(if root.is_some() {
                    "content after </xml>"
                } else {
                    "root element is not <xml>"
                }));
            }
            Event::Start(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(ParseError::TooLarge);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let name = element_name(start.name().as_ref(), position)?;
                // The root gets room for a typical message up front instead of regrowing.
                let capacity = if stack.is_empty() { 8 } else { 0 };
                stack.push(Frame::new(name, capacity));
            }
            Event::Empty(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(ParseError::TooLarge);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                match stack.last_mut() {
                    None => root = Some(Fields::default()),
                    Some(parent) => {
                        let name = element_name(start.name().as_ref(), position)?;
                        // Through `finish`, so `<PicList/>` is an empty List like `<PicList></PicList>`.
                        let (name, value) = Frame::new(name, 0).finish(source);
                        parent.add_child(name, value);
                    }
                }
            }
            Event::End(_) => {
                // quick-xml (check_end_names, on by default) has matched this to its start.
                let Some(frame) = stack.pop() else {
                    return Err(xml_error(position, "unexpected end tag"));
                };
                match stack.last_mut() {
                    Some(parent) => {
                        let (name, value) = frame.finish(source);
                        parent.add_child(name, value);
                    }
                    None => root = Some(frame.finish_root()),
                }
            }
            // Text beside an element's children is layout or stray text, which `push_text`
            // drops; in ASCII it is dropped unread (ASCII is UTF-8). Anything else is still
            // checked, so a body that is not UTF-8 is refused wherever it is.
            Event::Text(text)
                if text.is_ascii() && stack.last().is_some_and(|f| !f.children.is_empty()) => {}
            Event::Text(text) => {
                let s = text
                    .decode()
                    .map_err(|e| xml_error(position, &e.to_string()))?;
                match stack.last_mut() {
                    Some(frame) => frame.push_text(s, Piece::Plain),
                    None if is_blank(&s) => {}
                    None => {
                        return Err(ParseError::NotXml(if root.is_some() {
                            "content after </xml>"
                        } else {
                            "text outside the root element"
                        }))
                    }
                }
            }
            Event::CData(cdata) => {
                let s = cdata
                    .decode()
                    .map_err(|e| xml_error(position, &e.to_string()))?;
                match stack.last_mut() {
                    Some(frame) => frame.push_text(s, Piece::Exact),
                    None => return Err(ParseError::NotXml("CDATA outside the root element")),
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&reference, position)?;
                match stack.last_mut() {
                    Some(frame) => frame.push_text(resolved, Piece::Exact),
                    None => return Err(ParseError::NotXml("reference outside the root element")),
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                if let Some(frame) = stack.last() {
                    return Err(xml_error(
                        position,
                        &format!("unclosed element <{}>", frame.name),
                    ));
                }
                return root.ok_or(ParseError::NotXml("no <xml> element"));
            }
        }
    }
}

/// Children an element may have before repeat lookups switch from a scan to a hash map.
const LINEAR_LOOKUP_LIMIT: usize = 16;

/// Where a piece of character data came from, which decides whether its edges are trimmed.
#[derive(Clone, Copy, PartialEq)]
enum Piece {
    /// Plain text: whitespace at the value's start and end is layout, and trimmed.
    Plain,
    /// CDATA or a character/entity reference: kept exactly as written.
    Exact,
}

/// An element being built: its name, any text so far and its finished children.
struct Frame<'a> {
    name: FieldName,
    // Borrowed from the input while it is a single piece, so indentation before the first
    // child and single-CDATA leaves cost no copy until the value is kept.
    text: Cow<'a, str>,
    // Whether the value has begun: leading plain whitespace before it is dropped.
    started: bool,
    // Bytes of plain whitespace at the end of `text`, cut when the element closes unless
    // exact text follows them.
    trailing_blank: usize,
    children: Vec<(FieldName, Field)>,
    // Parallel to `children` once some name repeats (empty before, so the common case does
    // not allocate): true where the value is a List built from repeats, so a further repeat
    // extends it rather than nesting a genuine `<item>` List inside another.
    merged: Vec<bool>,
    // Name → index in `children`, built only for elements with many children so hostile
    // input with thousands of distinct names stays linear.
    index: Option<HashMap<FieldName, usize>>,
}

impl<'a> Frame<'a> {
    fn new(name: FieldName, capacity: usize) -> Self {
        Frame {
            name,
            text: Cow::Borrowed(""),
            started: false,
            trailing_blank: 0,
            children: Vec::with_capacity(capacity),
            merged: Vec::new(),
            index: None,
        }
    }

    /// Appends character data. Text beside child elements is not part of any value (stray
    /// text, indentation) and is dropped.
    fn push_text(&mut self, s: Cow<'a, str>, piece: Piece) {
        if !self.children.is_empty() {
            return;
        }
        let s = match piece {
            Piece::Plain if !self.started => trim_start_blank(s),
            _ => s,
        };
        if s.is_empty() && piece == Piece::Plain {
            return;
        }
        self.started = true;
        self.trailing_blank = match piece {
            Piece::Exact => 0,
            Piece::Plain => {
                let kept = s.trim_end_matches(is_blank_char).len();
                if kept == 0 {
                    self.trailing_blank + s.len()
                } else {
                    s.len() - kept
                }
            }
        };
        if self.text.is_empty() {
            self.text = s;
        } else {
            self.text.to_mut().push_str(&s);
        }
    }

    /// The value text, without the plain whitespace at its end: a view into `source` when
    /// the value was one piece of it, its own bytes when it was pieced together.
    fn take_text(&mut self, source: &Bytes) -> Text {
        let keep = self.text.len() - self.trailing_blank;
        match std::mem::take(&mut self.text) {
            Cow::Borrowed(s) => Text::shared(source, &s[..keep]),
            Cow::Owned(mut s) => {
                s.truncate(keep);
                Text::from(s)
            }
        }
    }

    fn is_merged(&self, i: usize) -> bool {
        self.merged.get(i).copied().unwrap_or(false)
    }

    fn find(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.children.iter().position(|(n, _)| n == name),
        }
    }

    /// Adds a finished child, merging repeats of one name into a single List in place.
    fn add_child(&mut self, name: FieldName, value: Field) {
        if self.children.is_empty() {
            // Text before the first child was stray text, not a value.
            self.text = Cow::Borrowed("");
            self.trailing_blank = 0;
        }
        if let Some(i) = self.find(&name) {
            if self.merged.is_empty() {
                self.merged.resize(self.children.len(), false);
            }
            let slot = &mut self.children[i].1;
            if self.merged[i] {
                if let Field::List(values) = slot {
                    values.push(value);
                }
            } else {
                let first = std::mem::replace(slot, Field::List(Vec::with_capacity(2)));
                if let Field::List(values) = slot {
                    values.push(first);
                    values.push(value);
                }
                self.merged[i] = true;
            }
            return;
        }
        let i = self.children.len();
        match &mut self.index {
            Some(index) => {
                index.insert(name.clone(), i);
            }
            None if i >= LINEAR_LOOKUP_LIMIT => {
                let mut index: HashMap<FieldName, usize> = self
                    .children
                    .iter()
                    .enumerate()
                    .map(|(j, (n, _))| (n.clone(), j))
                    .collect();
                index.insert(name.clone(), i);
                self.index = Some(index);
            }
            None => {}
        }
        self.children.push((name, value));
        if !self.merged.is_empty() {
            self.merged.push(false);
        }
    }

    /// Gives the children that are lists by nature (`item`, the [`REPEATED_LISTS`] of this
    /// element) the same shape whether WeChat sent none, one or several.
    fn listify_singles(&mut self) {
        let documented: Vec<&str> = REPEATED_LISTS
            .iter()
            .filter(|(parent, _)| *parent == self.name)
            .map(|(_, child)| *child)
            .collect();
        for (i, (name, value)) in self.children.iter_mut().enumerate() {
            let listy = name == "item" || documented.contains(&name.as_ref());
            if listy && !self.merged.get(i).copied().unwrap_or(false) {
                let single = std::mem::replace(value, Field::List(Vec::new()));
                *value = Field::List(vec![single]);
            }
        }
        for child in documented {
            if self.find(child).is_none() {
                self.add_child(Cow::Borrowed(child), Field::List(Vec::new()));
            }
        }
    }

    /// Turns a closed non-root element into its name and value.
    fn finish(mut self, source: &Bytes) -> (FieldName, Field) {
        let documented_parent = REPEATED_LISTS.iter().any(|(p, _)| *p == self.name);
        if self.children.is_empty() && ITEM_LISTS.contains(&self.name.as_ref()) {
            return (self.name, Field::List(Vec::new()));
        }
        if self.children.is_empty() && !documented_parent {
            let text = self.take_text(source);
            return (self.name, Field::Text(text));
        }
        if !documented_parent && self.children.len() == 1 && self.children[0].0 == "item" {
            // Children all `<item>`: the element itself is the list.
            let value = match self.children.pop() {
                Some((_, Field::List(items))) if self.is_merged(0) => items,
                Some((_, single)) => vec![single],
                None => Vec::new(),
            };
            return (self.name, Field::List(value));
        }
        self.listify_singles();
        (self.name, Field::Group(Fields(self.children)))
    }

    /// Turns the closed `<xml>` into the document's fields; it is always a Group (text
    /// directly inside `<xml>` is stray and dropped).
    fn finish_root(mut self) -> Fields {
        self.listify_singles();
        Fields(self.children)
    }
}

/// Resolves `&name;` or `&#…;`; only XML's five predefined entities exist here.
fn resolve_reference<'a>(
    reference: &BytesRef<'a>,
    position: u64,
) -> Result<Cow<'a, str>, ParseError> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
            Ok(None) | Err(_) => Err(xml_error(position, "invalid character reference")),
        };
    }
    let name = reference
        .decode()
        .map_err(|e| xml_error(position, &e.to_string()))?;
    resolve_predefined_entity(&name)
        .map(Cow::Borrowed)
        .ok_or_else(|| xml_error(position, &format!("unknown entity &{name};")))
}

/// Whether `s` is only XML whitespace (space, tab, CR, LF), which may sit between elements.
fn is_blank(s: &str) -> bool {
    s.chars().all(is_blank_char)
}

/// XML's whitespace (space, tab, CR, LF); not other Unicode spaces, which are content.
fn is_blank_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// `s` without the XML whitespace it starts with, still borrowed when it was.
fn trim_start_blank(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim_start_matches(is_blank_char)),
        Cow::Owned(o) => Cow::Owned(o.trim_start_matches(is_blank_char).to_owned()),
    }
}

/// An element name: borrowed from [`COMMON_NAMES`] when it is one of them (no copy per
/// message), owned otherwise.
fn element_name(raw: &[u8], position: u64) -> Result<FieldName, ParseError> {
    // Compared as bytes: a name equal to one of them is that ASCII text, valid UTF-8 without
    // a check; only another name is checked and copied.
    if let Some(common) = COMMON_NAMES.iter().find(|common| common.as_bytes() == raw) {
        return Ok(Cow::Borrowed(common));
    }
    let name =
        std::str::from_utf8(raw).map_err(|_| xml_error(position, "element name is not UTF-8"))?;
    Ok(Cow::Owned(name.to_owned()))
}

/// Where `name` is in [`COMMON_NAMES`], when the parser borrowed it from there: a pointer
/// comparison, so a consumer keeping something per common name (the Lua message table keeps
/// its keys) finds it without comparing or hashing the text.
pub fn common_name_index(name: &FieldName) -> Option<usize> {
    match name {
        Cow::Borrowed(name) => COMMON_NAMES
            .iter()
            .position(|common| std::ptr::eq(*common, *name)),
        Cow::Owned(_) => None,
    }
}

/// The element names of ordinary messages and events, most frequent first.
pub const COMMON_NAMES: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "MsgId",
    "Content",
    "Event",
    "EventKey",
    "Encrypt",
    "xml",
    "item",
    "MediaId",
    "PicUrl",
    "Format",
    "Recognition",
    "ThumbMediaId",
    "Location_X",
    "Location_Y",
    "Scale",
    "Label",
    "Title",
    "Description",
    "Url",
    "Latitude",
    "Longitude",
    "Precision",
    "Ticket",
    "MenuId",
    "MsgID",
    "MsgDataId",
    "Idx",
    "bizmsgmenuid",
];

fn xml_error(position: u64, message: &str) -> ParseError {
    ParseError::Xml {
        position,
        message: message.to_owned(),
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

    fn text_msg(content_xml: &str) -> Fields {
        parse_fields(&doc(&format!(
            "<MsgType><![CDATA[text]]></MsgType><Content>{content_xml}</Content><MsgId>1</MsgId>"
        )))
        .unwrap()
    }

    #[test]
    fn snake_case_follows_the_documented_names() {
        for (wechat, snake) in [
            ("ToUserName", "to_user_name"),
            ("MsgId", "msg_id"),
            ("MsgID", "msg_id"),
            ("OpenID", "open_id"),
            ("PicUrl", "pic_url"),
            ("Location_X", "location_x"),
            ("MediaId16K", "media_id16k"),
            ("PicMd5Sum", "pic_md5_sum"),
            ("ScanCodeInfo", "scan_code_info"),
            ("bizmsgmenuid", "bizmsgmenuid"),
            ("kf_account", "kf_account"),
            ("MsgDataId", "msg_data_id"),
            ("SubscribeMsgPopupEvent", "subscribe_msg_popup_event"),
            ("HTTPServer", "http_server"),
            ("A", "a"),
            ("", ""),
        ] {
            assert_eq!(snake_case(wechat), snake, "{wechat}");
        }
    }

    #[test]
    fn snake_case_borrows_when_already_snake() {
        assert!(matches!(snake_case("kf_account"), Cow::Borrowed(_)));
        assert!(matches!(snake_case("publish_id"), Cow::Borrowed(_)));
        assert!(matches!(snake_case("MsgId"), Cow::Owned(_)));
    }

    #[test]
    fn snake_case_keeps_non_ascii() {
        // Only ASCII letters count as word characters, so a capital after CJK starts no new word.
        assert_eq!(snake_case("字段Name"), "字段name");
        assert_eq!(snake_case("Name字段"), "name字段");
        assert_eq!(snake_case("é_Aa"), "é_aa");
        assert_eq!(snake_case("éAé"), "éaé");
    }

    #[test]
    fn snake_case_in_pieces_is_the_same_as_whole() {
        let name = "SubscribeMsgPopupEventHTTPServer字段NameMd5Sum";
        let bytes = name.as_bytes();
        for piece in 1..bytes.len() {
            let mut joined = Vec::new();
            let mut buf = vec![0; 2 * piece];
            for start in (0..bytes.len()).step_by(piece) {
                let end = (start + piece).min(bytes.len());
                let len = snake_case_into(bytes, start..end, &mut buf);
                joined.extend_from_slice(&buf[..len]);
            }
            assert_eq!(joined, snake_case(name).as_bytes(), "pieces of {piece}");
        }
    }

    #[test]
    fn cdata_split_around_terminator_comes_back_exact() {
        let m = text_msg("<![CDATA[a]]]]><![CDATA[>b]]>");
        assert_eq!(m.text("Content"), Some("a]]>b"));
    }

    #[test]
    fn markup_characters_emoji_and_cjk_come_back_exact() {
        let m = text_msg("<![CDATA[<b>&amp; 你好 😀 \"'</b>]]>");
        assert_eq!(m.text("Content"), Some("<b>&amp; 你好 😀 \"'</b>"));
        let m = text_msg("1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;&apos; &#20320;&#x1F600; 好");
        assert_eq!(m.text("Content"), Some("1 < 2 && 3 > 2 \"' 你😀 好"));
        let m = text_msg("x<![CDATA[ & ]]>y&amp;z");
        assert_eq!(m.text("Content"), Some("x & y&z"));
    }

    #[test]
    fn whitespace_around_plain_text_is_trimmed_and_inside_kept() {
        let m = text_msg("  two\n lines  ");
        assert_eq!(m.text("Content"), Some("two\n lines"));
        let m = text_msg("\n\t ");
        assert_eq!(m.text("Content"), Some(""));
        // Only XML's whitespace: an ideographic space is content.
        let m = text_msg("\u{3000}x\u{3000}");
        assert_eq!(m.text("Content"), Some("\u{3000}x\u{3000}"));
    }

    #[test]
    fn stray_text_beside_elements_is_ignored() {
        for stray in [
            "webwx_msg_cli_ver_0x1",
            "// 以下为示例",
            "<![CDATA[stray]]>",
            "a &amp; b",
        ] {
            let xml = format!(
                "<xml>{stray}\n<ToUserName><![CDATA[gh_1]]></ToUserName>\n{stray}\n\
                 <FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1</CreateTime>\
                 <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>\
                 <ScanCodeInfo>{stray}<ScanType>qrcode</ScanType>{stray}</ScanCodeInfo>\
                 <MsgId>9</MsgId>\n{stray}\n</xml>"
            );
            let m = parse_fields(xml.as_bytes()).unwrap();
            assert_eq!(m.text("Content"), Some("hi"), "{stray}");
            assert_eq!(m.len(), 7, "{stray}");
            let scan = m.get("ScanCodeInfo").and_then(Field::as_group).unwrap();
            assert_eq!(scan.text("ScanType"), Some("qrcode"));
            assert_eq!(scan.len(), 1);
        }
        assert_eq!(
            parse_fields(b"<xml>loose text</xml>"),
            Ok(Fields::default())
        );
    }

    /// The documented list under `path` (names from the root) in `xml`.
    fn list_at<'a>(fields: &'a Fields, path: &[&str]) -> &'a [Field] {
        let (last, groups) = path.split_last().unwrap();
        let mut at = fields;
        for name in groups {
            at = at.get(name).and_then(Field::as_group).unwrap_or_else(|| {
                panic!("{name} is not a group in {fields:?}");
            });
        }
        at.get(last)
            .and_then(Field::as_list)
            .unwrap_or_else(|| panic!("{last} is not a list: {:?}", at.get(last)))
    }

    #[test]
    fn documented_lists_are_lists_with_zero_one_or_two_items() {
        // (event, wrapper around the items, path to the list, one item's XML)
        let cases: &[(&str, &str, &[&str], &str)] = &[
            (
                "pic_sysphoto",
                "<SendPicsInfo><Count>N</Count><PicList>ITEMS</PicList></SendPicsInfo>",
                &["SendPicsInfo", "PicList"],
                "<item><PicMd5Sum><![CDATA[m]]></PicMd5Sum></item>",
            ),
            (
                "MASSSENDJOBFINISH",
                "<CopyrightCheckResult><Count>N</Count><ResultList>ITEMS</ResultList>\
                 <CheckState>2</CheckState></CopyrightCheckResult>",
                &["CopyrightCheckResult", "ResultList"],
                "<item><ArticleIdx>1</ArticleIdx><AuditState>2</AuditState></item>",
            ),
            (
                "MASSSENDJOBFINISH",
                "<ArticleUrlResult><Count>N</Count><ResultList>ITEMS</ResultList></ArticleUrlResult>",
                &["ArticleUrlResult", "ResultList"],
                "<item><ArticleIdx>1</ArticleIdx><ArticleUrl><![CDATA[u]]></ArticleUrl></item>",
            ),
            (
                "PUBLISHJOBFINISH",
                "<PublishEventInfo><publish_id>1</publish_id><publish_status>2</publish_status>\
                 ITEMS</PublishEventInfo>",
                &["PublishEventInfo", "fail_idx"],
                "<fail_idx>1</fail_idx>",
            ),
            (
                "PUBLISHJOBFINISH",
                "<PublishEventInfo><publish_id>1</publish_id><article_detail><count>N</count>\
                 ITEMS</article_detail></PublishEventInfo>",
                &["PublishEventInfo", "article_detail", "item"],
                "<item><idx>1</idx><article_url><![CDATA[u]]></article_url></item>",
            ),
            (
                "ShakearoundUserShake",
                "<ChosenBeacon><Uuid>u</Uuid></ChosenBeacon><AroundBeacons>ITEMS</AroundBeacons>",
                &["AroundBeacons", "AroundBeacon"],
                "<AroundBeacon><Uuid><![CDATA[u]]></Uuid><Major>1</Major><Distance>1.5</Distance></AroundBeacon>",
            ),
            (
                "subscribe_msg_popup_event",
                "<SubscribeMsgPopupEvent>ITEMS</SubscribeMsgPopupEvent>",
                &["SubscribeMsgPopupEvent", "List"],
                "<List><TemplateId>t</TemplateId><SubscribeStatusString>accept</SubscribeStatusString></List>",
            ),
            (
                "subscribe_msg_sent_event",
                "<SubscribeMsgSentEvent>ITEMS</SubscribeMsgSentEvent>",
                &["SubscribeMsgSentEvent", "List"],
                "<List><TemplateId>t</TemplateId><ErrorCode>0</ErrorCode></List>",
            ),
        ];
        for (event, wrapper, path, item) in cases {
            for n in 0..=2 {
                let items = item.repeat(n);
                let body = wrapper
                    .replace("ITEMS", &items)
                    .replace('N', &n.to_string());
                let xml = doc(&format!(
                    "<MsgType>event</MsgType><Event>{event}</Event>{body}"
                ));
                let m = parse_fields(&xml).unwrap();
                let list = list_at(&m, path);
                assert_eq!(list.len(), n, "{event} {path:?} with {n}");
                if n > 0 {
                    assert!(
                        matches!(list[0], Field::Group(_) | Field::Text(_)),
                        "{path:?}: {list:?}"
                    );
                }
            }
        }
        // Self-closing and whitespace-only containers are empty lists too.
        for pics in [
            "<PicList/>",
            "<PicList>\n  </PicList>",
            "<PicList><![CDATA[]]></PicList>",
        ] {
            let xml = doc(&format!(
                "<MsgType>event</MsgType><Event>pic_weixin</Event>\
                 <SendPicsInfo><Count>0</Count>{pics}</SendPicsInfo>"
            ));
            let m = parse_fields(&xml).unwrap();
            assert!(
                list_at(&m, &["SendPicsInfo", "PicList"]).is_empty(),
                "{pics}"
            );
        }
        let m = parse_fields(&doc(
            "<MsgType>event</MsgType><Event>ShakearoundUserShake</Event><AroundBeacons/>",
        ))
        .unwrap();
        assert!(list_at(&m, &["AroundBeacons", "AroundBeacon"]).is_empty());
        // article_detail stays a table with `item` even when it holds nothing but items.
        let m = parse_fields(&doc(
            "<MsgType>event</MsgType><Event>PUBLISHJOBFINISH</Event><PublishEventInfo>\
             <article_detail><item><idx>1</idx></item></article_detail></PublishEventInfo>",
        ))
        .unwrap();
        assert_eq!(
            list_at(&m, &["PublishEventInfo", "article_detail", "item"]).len(),
            1
        );
    }

    #[test]
    fn repeated_items_and_lists_are_all_kept() {
        let m = parse_fields(&doc("<MsgType>event</MsgType><Event>pic_weixin</Event>\
             <SendPicsInfo><Count>3</Count><PicList>\
             <item><PicMd5Sum>a</PicMd5Sum></item>\
             <item><PicMd5Sum>b</PicMd5Sum></item>\
             <item><PicMd5Sum>c</PicMd5Sum></item>\
             </PicList></SendPicsInfo>"))
        .unwrap();
        let info = m.get("SendPicsInfo").and_then(Field::as_group).unwrap();
        let pics = info.get("PicList").and_then(Field::as_list).unwrap();
        let md5s: Vec<_> = pics
            .iter()
            .map(|p| p.as_group().unwrap().text("PicMd5Sum").unwrap())
            .collect();
        assert_eq!(md5s, ["a", "b", "c"]);
    }

    #[test]
    fn a_value_in_one_piece_is_a_view_into_the_body_and_a_pieced_one_its_own() {
        let source = Bytes::from(doc(
            "<MsgType><![CDATA[text]]></MsgType><Content>  hello  </Content>\
             <A>&amp;</A><B>&#x4F60;</B><C>x&lt;y</C><D><![CDATA[p]]><![CDATA[q]]></D><E></E>",
        ));
        let fields = parse_shared_fields(&source).unwrap();
        let inside = |t: &Text| {
            let range = source.as_ptr_range();
            range.contains(&t.as_ptr())
        };
        let text = |name| fields.shared_text(name).unwrap();
        assert_eq!(text("Content"), "hello");
        assert!(inside(text("Content")) && inside(text("FromUserName")));
        // An entity alone is a static replacement, not a slice of the body: copied, not cut.
        assert_eq!(text("A"), "&");
        assert_eq!(text("B"), "你");
        assert_eq!(text("C"), "x<y");
        assert_eq!(text("D"), "pq");
        assert!(!inside(text("A")) && !inside(text("C")) && !inside(text("D")));
        assert_eq!(text("E"), "");
        // The values outlive the parse and the caller's handle on the buffer.
        let kept = text("Content").clone();
        drop(fields);
        drop(source);
        assert_eq!(kept, "hello");
    }

    #[test]
    fn repeated_names_merge_in_place_without_flattening_item_lists() {
        let fields = parse_fields(
            b"<xml><A>1</A><B/><A>2</A><R><item>x</item></R><R><item>y</item><item>z</item></R></xml>",
        )
        .unwrap();
        assert_eq!(
            fields,
            Fields(vec![
                (
                    "A".into(),
                    Field::List(vec![Field::Text("1".into()), Field::Text("2".into())])
                ),
                ("B".into(), Field::Text(Text::default())),
                (
                    "R".into(),
                    Field::List(vec![
                        Field::List(vec![Field::Text("x".into())]),
                        Field::List(vec![Field::Text("y".into()), Field::Text("z".into())]),
                    ])
                ),
            ])
        );
    }

    #[test]
    fn repeats_merge_the_same_way_past_the_linear_lookup_limit() {
        let mut xml = String::from("<xml>");
        for i in 0..LINEAR_LOOKUP_LIMIT + 4 {
            xml.push_str(&format!("<F{i}>{i}</F{i}>"));
        }
        xml.push_str("<F0>again</F0><F19>again</F19><F0>third</F0><Last/></xml>");
        let fields = parse_fields(xml.as_bytes()).unwrap();
        assert_eq!(fields.len(), LINEAR_LOOKUP_LIMIT + 5);
        let texts = |name: &str| -> Vec<&str> {
            fields
                .get(name)
                .and_then(Field::as_list)
                .unwrap()
                .iter()
                .map(|f| f.as_text().unwrap())
                .collect()
        };
        assert_eq!(texts("F0"), ["0", "again", "third"]);
        assert_eq!(texts("F19"), ["19", "again"]);
        assert_eq!(fields.text("F18"), Some("18"));
        assert_eq!(fields.iter().last().map(|(n, _)| n), Some("Last"));
    }

    #[test]
    fn doctype_and_entity_expansion_are_refused() {
        let billion_laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content></xml>"#;
        assert_eq!(parse_fields(billion_laughs), Err(ParseError::DocType));
        let xxe = br#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"#;
        assert_eq!(parse_fields(xxe), Err(ParseError::DocType));
        // Without a DTD, an undeclared entity is simply malformed.
        let err = parse_fields(&doc("<MsgType>text</MsgType><Content>&lol3;</Content>"));
        assert!(matches!(err, Err(ParseError::Xml { .. })), "{err:?}");
    }

    #[test]
    fn malformed_documents_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"  \n ",
            b"hello",
            b"<xml>",
            b"<xml><A>1</xml>",
            b"<xml><A>1</B></xml>",
            b"</xml>",
            b"<xml><A>1</A>",
            b"<xml><A><![CDATA[unterminated</A></xml>",
            b"<xml><A>&#xD800;</A></xml>",
            b"<xml><A>a & b</A></xml>",
            b"<xml><A>&amp</A></xml>",
            b"<root><A>1</A></root>",
            b"junk<xml><A>1</A></xml>",
            b"<xml><A>1</A></xml>trailing",
            b"<xml><A>1</A></xml><xml></xml>",
            b"<xml><A>1</A></xml><![CDATA[x]]>",
            b"<xml><A>1</A></xml>&amp;",
            b"<xml><A>1</A></xml><B/>",
            b"<!-- only a comment -->",
            b"<?xml version=\"1.0\"?>",
        ];
        for case in cases {
            assert!(
                parse_fields(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(parse_fields(b""), Err(ParseError::NotXml("empty body")));
    }

    #[test]
    fn structure_errors_stay_errors_with_stray_text_allowed() {
        // Stray text is ignored, but only inside <xml>: around it, it is still refused.
        for case in [
            &b"junk<xml><A>1</A></xml>"[..],
            b"<xml><A>1</A></xml>trailing",
            b"<!DOCTYPE xml><xml>stray<A>1</A></xml>",
            b"<xml>stray<A>1</B></xml>",
        ] {
            assert!(
                parse_fields(case).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn trailing_whitespace_and_comments_are_fine() {
        assert!(parse_fields(b"\xEF\xBB\xBF<xml><A>1</A></xml>\r\n<!-- end -->\n").is_ok());
    }

    #[test]
    fn non_utf8_is_an_error() {
        let mut bad = doc("<MsgType>text</MsgType><Content>");
        bad.extend_from_slice(&[0xC4, 0xE3, 0xFF]);
        bad.extend_from_slice(b"</Content></xml>");
        assert!(matches!(parse_fields(&bad), Err(ParseError::Xml { .. })));
        let mut cdata = doc("<MsgType>text</MsgType><Content><![CDATA[");
        cdata.extend_from_slice(&[0xFF, 0xFE]);
        cdata.extend_from_slice(b"]]></Content></xml>");
        assert!(matches!(parse_fields(&cdata), Err(ParseError::Xml { .. })));
        assert!(parse_fields(b"<xml><\xFF>1</\xFF></xml>").is_err());
        // Stray text between children is dropped, but still refused when it is not UTF-8.
        assert!(parse_fields(b"<xml><A>1</A>\xFF\xFE<B>2</B></xml>").is_err());
        let fields = parse_fields(b"<xml><A>1</A>\n stray \t<B>2</B>\xE4\xBD\xA0</xml>").unwrap();
        assert_eq!(fields.text("A"), Some("1"));
        assert_eq!(fields.text("B"), Some("2"));
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn nesting_is_bounded() {
        let nest = |depth: usize, empty: bool| {
            let mut s = String::from("<xml>");
            for _ in 1..depth - usize::from(empty) {
                s.push_str("<a>");
            }
            if empty {
                s.push_str("<a/>");
            } else {
                s.push('x');
            }
            for _ in 1..depth - usize::from(empty) {
                s.push_str("</a>");
            }
            s.push_str("</xml>");
            s
        };
        assert!(parse_fields(nest(MAX_DEPTH, false).as_bytes()).is_ok());
        assert!(parse_fields(nest(MAX_DEPTH, true).as_bytes()).is_ok());
        assert_eq!(
            parse_fields(nest(MAX_DEPTH + 1, false).as_bytes()),
            Err(ParseError::TooDeep)
        );
        assert_eq!(
            parse_fields(nest(MAX_DEPTH + 1, true).as_bytes()),
            Err(ParseError::TooDeep)
        );
        let hostile = "<a>".repeat(100_000);
        assert_eq!(
            parse_fields(format!("<xml>{hostile}").as_bytes()),
            Err(ParseError::TooDeep)
        );
    }

    #[test]
    fn element_count_is_bounded() {
        let many = "<A>1</A>".repeat(MAX_ELEMENTS);
        assert_eq!(
            parse_fields(format!("<xml>{many}</xml>").as_bytes()),
            Err(ParseError::TooLarge)
        );
        let fits = "<A>1</A>".repeat(MAX_ELEMENTS - 1);
        let fields = parse_fields(format!("<xml>{fits}</xml>").as_bytes()).unwrap();
        assert_eq!(
            fields.get("A").and_then(Field::as_list).map(<[Field]>::len),
            Some(MAX_ELEMENTS - 1)
        );
    }

    #[test]
    fn errors_carry_a_position() {
        match parse_fields(b"<xml><A>1</B></xml>") {
            Err(ParseError::Xml { position, .. }) => assert!(position > 0),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_content_round_trips_through_cdata_and_escapes(content in "\\PC*") {
            let cdata = format!("<![CDATA[{}]]>", content.replace("]]>", "]]]]><![CDATA[>"));
            let from_cdata = text_msg(&cdata);
            proptest::prop_assert_eq!(from_cdata.text("Content"), Some(content.as_str()));
            let escaped = content.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            // Plain text loses the XML whitespace at its edges (layout, as every peer reads it)...
            let from_text = text_msg(&escaped);
            let xml_blank = [' ', '\t', '\r', '\n'];
            proptest::prop_assert_eq!(from_text.text("Content"), Some(content.trim_matches(&xml_blank[..])));
            // ...and keeps it exactly when written as character references.
            let referenced = escaped
                .replace(' ', "&#32;")
                .replace('\t', "&#9;")
                .replace('\r', "&#13;")
                .replace('\n', "&#10;");
            let from_refs = text_msg(&referenced);
            proptest::prop_assert_eq!(from_refs.text("Content"), Some(content.as_str()));
        }
    }
}
