//! The platform's automated release test (全网发布接入检测): before a platform is published,
//! WeChat sends messages from two published test accounts and checks the documented
//! answers. They are answered here, before any script runs, and only for those two appids:
//!
//! - the text `TESTCOMPONENT_MSG_TYPE_TEXT` → the text `TESTCOMPONENT_MSG_TYPE_TEXT_callback`;
//! - the text `QUERY_AUTH_CODE:$query_auth_code$` → an empty answer at once, then (through
//!   `api_query_auth` with that code, and the authorizer access_token it gives) a
//!   customer-service text `$query_auth_code$_from_api` to the sender;
//! - an event → the text `<Event>from_callback`.
//!
//! Anything else from them goes to the scripts like any authorizer's message.

use crate::protocol::message::{InboundMessage, MsgType};
use crate::protocol::reply::Reply;

/// The appids of WeChat's release-test accounts (公众号 and 小程序).
pub const TEST_APPIDS: [&str; 2] = ["wx570bc396a51b8ff8", "wxd101a85aa106f53e"];
/// The test text, answered with [`TEXT_ANSWER`].
pub const TEXT_QUESTION: &str = "TESTCOMPONENT_MSG_TYPE_TEXT";
/// The answer to [`TEXT_QUESTION`].
pub const TEXT_ANSWER: &str = "TESTCOMPONENT_MSG_TYPE_TEXT_callback";
/// The prefix of the text carrying an authorization code.
pub const QUERY_AUTH_PREFIX: &str = "QUERY_AUTH_CODE:";
/// Appended to the code in the customer-service answer.
pub const FROM_API_SUFFIX: &str = "_from_api";
/// Appended to the event in the answer to an event.
pub const EVENT_SUFFIX: &str = "from_callback";

/// What the release test expects for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// This passive reply.
    Reply(Reply),
    /// An empty answer now, then the customer-service text `<code>_from_api` to `openid`
    /// through the authorizer token `api_query_auth` gives for `code`.
    QueryAuth {
        /// The authorization code.
        code: String,
        /// Who to send the text to.
        openid: String,
    },
}

/// Whether `appid` is one of the release test's accounts.
pub fn is_test_account(appid: &str) -> bool {
    TEST_APPIDS.contains(&appid)
}

/// The release test's expectation for `msg` sent to `appid`; `None` when `appid` is not a
/// test account or the message is not one of the test's.
pub fn expected(appid: &str, msg: &InboundMessage) -> Option<Expected> {
    if !is_test_account(appid) {
        return None;
    }
    match &msg.kind {
        MsgType::Text => {
            let content = msg.content()?.trim();
            if content == TEXT_QUESTION {
                return Some(Expected::Reply(Reply::Text {
                    content: TEXT_ANSWER.into(),
                }));
            }
            let code = content.strip_prefix(QUERY_AUTH_PREFIX)?.trim();
            (!code.is_empty()).then(|| Expected::QueryAuth {
                code: code.to_string(),
                openid: msg.from_user.to_string(),
            })
        }
        MsgType::Event(_) => {
            let event = msg.fields.text("Event")?.trim();
            Some(Expected::Reply(Reply::Text {
                content: format!("{event}{EVENT_SUFFIX}"),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> InboundMessage {
        InboundMessage::parse(
            format!(
                "<xml><ToUserName>gh_3c884a361561</ToUserName><FromUserName>ozy4qt5QUADNXORxCVipKMV9dss0</FromUserName><CreateTime>1</CreateTime>{body}</xml>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_documented_cases_and_nothing_else() {
        let text = msg("<MsgType>text</MsgType><Content>TESTCOMPONENT_MSG_TYPE_TEXT</Content>");
        assert_eq!(
            expected(TEST_APPIDS[0], &text),
            Some(Expected::Reply(Reply::Text {
                content: "TESTCOMPONENT_MSG_TYPE_TEXT_callback".into()
            }))
        );
        assert_eq!(expected("wx_not_a_test_account", &text), None);
        let code =
            msg("<MsgType>text</MsgType><Content>QUERY_AUTH_CODE:queryauthcode@@@abc</Content>");
        assert_eq!(
            expected(TEST_APPIDS[1], &code),
            Some(Expected::QueryAuth {
                code: "queryauthcode@@@abc".into(),
                openid: "ozy4qt5QUADNXORxCVipKMV9dss0".into()
            })
        );
        let event = msg("<MsgType>event</MsgType><Event>LOCATION</Event>");
        assert_eq!(
            expected(TEST_APPIDS[0], &event),
            Some(Expected::Reply(Reply::Text {
                content: "LOCATIONfrom_callback".into()
            }))
        );
        let other = msg("<MsgType>text</MsgType><Content>hello</Content>");
        assert_eq!(expected(TEST_APPIDS[0], &other), None);
    }
}
