//! [`Text`]: UTF-8 in a shared buffer. A value read from a message is a view into the body it
//! came from, so a message's fields cost no copy each.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// UTF-8 text in a reference-counted buffer: cloning or keeping it copies nothing. Reads as
/// a `&str` (it derefs to one).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// `part`, shared with `source` when it is a slice of it (the parser's borrowed events
    /// are); copied when it is not (an entity's replacement is a static string).
    pub(super) fn shared(source: &Bytes, part: &str) -> Text {
        let within = source.as_ptr_range();
        let part_range = part.as_bytes().as_ptr_range();
        if part.is_empty() {
            Text::default()
        } else if within.start <= part_range.start && part_range.end <= within.end {
            Text(source.slice_ref(part.as_bytes()))
        } else {
            Text::from(part)
        }
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor takes a `str` (or a slice of one, cut by the parser on
        // character boundaries), so the bytes are valid UTF-8 and never change afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}
