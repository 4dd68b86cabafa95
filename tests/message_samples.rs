//! Every documented inbound message and event sample, parsed from `tests/fixtures/messages/`,
//! plus fuzzing of `parse` with mutations of those samples.

use std::path::PathBuf;

use proptest::prelude::*;
use wechat_lua::protocol::message::{EventType, InboundMessage, MsgType};
use wechat_lua::protocol::xml_fields::{parse_fields, Field, Fields};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages")
}

fn raw(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(format!("{name}.xml"))).unwrap()
}

fn load(name: &str) -> InboundMessage {
    InboundMessage::parse(&raw(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn group<'a>(fields: &'a Fields, name: &str) -> &'a Fields {
    fields
        .get(name)
        .and_then(Field::as_group)
        .unwrap_or_else(|| panic!("{name} is not a group: {:?}", fields.get(name)))
}

fn list<'a>(fields: &'a Fields, name: &str) -> &'a [Field] {
    fields
        .get(name)
        .and_then(Field::as_list)
        .unwrap_or_else(|| panic!("{name} is not a list: {:?}", fields.get(name)))
}

fn item(f: &Field) -> &Fields {
    f.as_group().unwrap()
}

#[test]
fn text_with_msg_data_id() {
    let m = load("text");
    assert_eq!(m.kind, MsgType::Text);
    assert_eq!(m.msg_type(), "text");
    assert_eq!(m.to_user, "toUser");
    assert_eq!(m.from_user, "fromUser");
    assert_eq!(m.create_time, 1348831860);
    assert_eq!(m.content(), Some("this is a test"));
    assert_eq!(m.msg_id(), Some("1234567890123456"));
    assert_eq!(m.event(), None);
    assert_eq!(m.fields.text("MsgDataId"), Some("xxxx"));
    assert_eq!(m.fields.text("Idx"), Some("xxxx"));
    let names: Vec<&str> = m.fields.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "ToUserName",
            "FromUserName",
            "CreateTime",
            "MsgType",
            "Content",
            "MsgId",
            "MsgDataId",
            "Idx"
        ]
    );
    assert_eq!(m.dedup_key(), "fromUser|1234567890123456");
}

#[test]
fn text_with_bizmsgmenuid() {
    let m = load("text_bizmsgmenuid");
    assert_eq!(m.kind, MsgType::Text);
    assert_eq!(m.content(), Some("满意"));
    assert_eq!(m.fields.text("bizmsgmenuid"), Some("101"));
}

#[test]
fn image() {
    let m = load("image");
    assert_eq!(m.kind, MsgType::Image);
    assert_eq!(m.fields.text("PicUrl"), Some("this is a url"));
    assert_eq!(m.fields.text("MediaId"), Some("media_id"));
    assert_eq!(m.msg_id(), Some("1234567890123456"));
}

#[test]
fn voice_with_recognition_and_16k() {
    let m = load("voice");
    assert_eq!(m.kind, MsgType::Voice);
    assert_eq!(m.fields.text("Format"), Some("Format"));
    assert_eq!(m.fields.text("Recognition"), Some("腾讯微信团队"));
    assert_eq!(m.fields.text("MediaId16K"), Some("media_id_16k"));
    assert_eq!(m.create_time, 1357290913);
}

#[test]
fn video_and_shortvideo() {
    let v = load("video");
    assert_eq!(v.kind, MsgType::Video);
    assert_eq!(v.fields.text("ThumbMediaId"), Some("thumb_media_id"));
    let s = load("shortvideo");
    assert_eq!(s.kind, MsgType::ShortVideo);
    assert_eq!(s.msg_type(), "shortvideo");
    assert_eq!(s.fields.text("MediaId"), Some("media_id"));
}

#[test]
fn location() {
    let m = load("location");
    assert_eq!(m.kind, MsgType::Location);
    assert_eq!(m.fields.text("Location_X"), Some("23.134521"));
    assert_eq!(m.fields.text("Location_Y"), Some("113.358803"));
    assert_eq!(m.fields.text("Scale"), Some("20"));
    assert_eq!(m.fields.text("Label"), Some("位置信息"));
}

#[test]
fn link() {
    let m = load("link");
    assert_eq!(m.kind, MsgType::Link);
    assert_eq!(m.fields.text("Title"), Some("公众平台官网链接"));
    assert_eq!(m.fields.text("Url"), Some("url"));
}

#[test]
fn miniprogrampage() {
    let m = load("miniprogrampage");
    assert_eq!(m.kind, MsgType::MiniProgramPage);
    assert_eq!(m.msg_type(), "miniprogrampage");
    assert_eq!(m.fields.text("AppId"), Some("AppId"));
    assert_eq!(m.fields.text("PagePath"), Some("PagePath"));
}

#[test]
fn file() {
    let m = load("file");
    assert_eq!(m.kind, MsgType::File);
    assert_eq!(m.fields.text("Title"), Some("report.pdf"));
    assert_eq!(m.fields.text("FileTotalLen"), Some("122880"));
}

#[test]
fn subscribe_plain_and_qrscene() {
    let m = load("event_subscribe");
    assert_eq!(m.kind, MsgType::Event(EventType::Subscribe));
    assert_eq!(m.msg_type(), "event");
    assert_eq!(m.event(), Some("subscribe"));
    assert_eq!(m.event_key(), None);
    assert_eq!(m.dedup_key(), "FromUser|123456789|subscribe|");

    let q = load("event_subscribe_qrscene");
    assert_eq!(q.kind, MsgType::Event(EventType::Subscribe));
    assert_eq!(q.event_key(), Some("qrscene_123123"));
    assert_eq!(q.fields.text("Ticket"), Some("TICKET"));
    assert_eq!(q.dedup_key(), "FromUser|123456789|subscribe|qrscene_123123");
}

#[test]
fn unsubscribe() {
    let m = load("event_unsubscribe");
    assert_eq!(m.kind, MsgType::Event(EventType::Unsubscribe));
    assert_eq!(m.event(), Some("unsubscribe"));
}

#[test]
fn scan_is_lowercased() {
    let m = load("event_scan");
    assert_eq!(m.kind, MsgType::Event(EventType::Scan));
    assert_eq!(m.event(), Some("scan"));
    assert_eq!(
        m.fields.text("Event"),
        Some("SCAN"),
        "raw field keeps WeChat's spelling"
    );
    assert_eq!(m.event_key(), Some("SCENE_VALUE"));
}

#[test]
fn location_event() {
    let m = load("event_location");
    assert_eq!(m.kind, MsgType::Event(EventType::Location));
    assert_eq!(m.event(), Some("location"));
    assert_eq!(m.fields.text("Latitude"), Some("23.137466"));
    assert_eq!(m.fields.text("Longitude"), Some("113.352425"));
    assert_eq!(m.fields.text("Precision"), Some("119.385040"));
}

#[test]
fn click_and_view() {
    let c = load("event_click");
    assert_eq!(c.kind, MsgType::Event(EventType::Click));
    assert_eq!(c.event_key(), Some("EVENTKEY"));
    let v = load("event_view");
    assert_eq!(v.kind, MsgType::Event(EventType::View));
    assert_eq!(v.event_key(), Some("www.qq.com"));
    assert_eq!(v.fields.text("MenuId"), Some("MENUID"));
}

#[test]
fn scancode_events() {
    for (name, kind, result) in [
        ("event_scancode_push", EventType::ScancodePush, "1"),
        ("event_scancode_waitmsg", EventType::ScancodeWaitmsg, "2"),
    ] {
        let m = load(name);
        assert_eq!(m.event(), Some(kind.as_str()));
        assert_eq!(m.kind, MsgType::Event(kind));
        assert_eq!(m.event_key(), Some("6"));
        let info = group(&m.fields, "ScanCodeInfo");
        assert_eq!(info.text("ScanType"), Some("qrcode"));
        assert_eq!(info.text("ScanResult"), Some(result));
        assert_eq!(info.len(), 2);
    }
}

#[test]
fn pic_events_have_pic_list_items() {
    for (name, kind, md5) in [
        (
            "event_pic_sysphoto",
            EventType::PicSysphoto,
            "1b5f7c23b5bf75682a53e7b6d163e185",
        ),
        (
            "event_pic_photo_or_album",
            EventType::PicPhotoOrAlbum,
            "5a75aaca956d97be686719218f275c6b",
        ),
        (
            "event_pic_weixin",
            EventType::PicWeixin,
            "5a75aaca956d97be686719218f275c6b",
        ),
    ] {
        let m = load(name);
        assert_eq!(m.event(), Some(kind.as_str()));
        assert_eq!(m.kind, MsgType::Event(kind));
        let info = group(&m.fields, "SendPicsInfo");
        assert_eq!(info.text("Count"), Some("1"));
        let pics = list(info, "PicList");
        assert_eq!(pics.len(), 1);
        assert_eq!(item(&pics[0]).text("PicMd5Sum"), Some(md5));
    }
}

#[test]
fn location_select() {
    let m = load("event_location_select");
    assert_eq!(m.kind, MsgType::Event(EventType::LocationSelect));
    let info = group(&m.fields, "SendLocationInfo");
    assert_eq!(info.text("Location_X"), Some("23"));
    assert_eq!(info.text("Label"), Some(" 广州市海珠区客村艺苑路 106号"));
    assert_eq!(info.text("Poiname"), Some(""), "empty CDATA is empty text");
}

#[test]
fn view_miniprogram() {
    let m = load("event_view_miniprogram");
    assert_eq!(m.kind, MsgType::Event(EventType::ViewMiniprogram));
    assert_eq!(m.event_key(), Some("pages/index/index"));
    assert_eq!(m.fields.text("MenuId"), Some("MENUID"));
}

#[test]
fn masssendjobfinish_with_copyright_results() {
    let m = load("event_masssendjobfinish");
    assert_eq!(m.kind, MsgType::Event(EventType::MassSendJobFinish));
    assert_eq!(m.event(), Some("masssendjobfinish"));
    assert_eq!(m.msg_id(), Some("1000001625"), "MsgID spelling is accepted");
    assert_eq!(m.fields.text("Status"), Some("err(30003)"));
    let check = group(&m.fields, "CopyrightCheckResult");
    assert_eq!(check.text("Count"), Some("2"));
    assert_eq!(check.text("CheckState"), Some("2"));
    let results = list(check, "ResultList");
    assert_eq!(results.len(), 2);
    for (i, r) in results.iter().enumerate() {
        let r = item(r);
        assert_eq!(r.text("ArticleIdx"), Some((i + 1).to_string().as_str()));
        assert_eq!(
            r.text("OriginalArticleUrl"),
            Some(format!("Url_{}", i + 1).as_str())
        );
        assert_eq!(r.text("NeedShowReprintSource"), Some("1"));
    }
    let urls = list(group(&m.fields, "ArticleUrlResult"), "ResultList");
    assert_eq!(item(&urls[0]).text("ArticleUrl"), Some("Url"));
    // Events dedup on sender and time, not on the MsgID.
    assert_eq!(
        m.dedup_key(),
        "oV5CrjpxgaGXNHIQigzNlgLTnwic|1481013459|masssendjobfinish|"
    );
}

#[test]
fn templatesendjobfinish() {
    let m = load("event_templatesendjobfinish");
    assert_eq!(m.kind, MsgType::Event(EventType::TemplateSendJobFinish));
    assert_eq!(m.event(), Some("templatesendjobfinish"));
    assert_eq!(m.msg_id(), Some("200163836"));
    assert_eq!(m.fields.text("Status"), Some("success"));
}

#[test]
fn publishjobfinish_article_detail() {
    let m = load("event_publishjobfinish");
    assert_eq!(m.kind, MsgType::Event(EventType::PublishJobFinish));
    assert_eq!(m.event(), Some("publishjobfinish"));
    let info = group(&m.fields, "PublishEventInfo");
    assert_eq!(info.text("publish_id"), Some("2247503051"));
    assert_eq!(info.text("publish_status"), Some("0"));
    assert_eq!(
        info.text("article_id"),
        Some("b5O2OUs25HBxRceL7hfReg-U9QGeq9zQjiDvyWP4Hq4")
    );
    let detail = group(info, "article_detail");
    assert_eq!(detail.text("count"), Some("1"));
    // A lone <item> beside <count> is still a list, so scripts can always iterate it.
    let items = list(detail, "item");
    assert_eq!(items.len(), 1);
    assert_eq!(item(&items[0]).text("idx"), Some("1"));
    assert_eq!(item(&items[0]).text("article_url"), Some("ARTICLE_URL"));
}

#[test]
fn publishjobfinish_failed_lists_every_fail_idx_and_no_article() {
    let m = load("event_publishjobfinish_failed");
    let info = group(&m.fields, "PublishEventInfo");
    assert_eq!(info.text("publish_status"), Some("2"));
    let failed: Vec<_> = list(info, "fail_idx")
        .iter()
        .map(|f| f.as_text().unwrap())
        .collect();
    assert_eq!(failed, ["1", "2"]);
    // And the successful sample carries an empty fail_idx list, not none.
    let ok = load("event_publishjobfinish");
    assert!(list(group(&ok.fields, "PublishEventInfo"), "fail_idx").is_empty());
}

#[test]
fn shakearound_user_shake_lists_every_beacon() {
    let m = load("event_shakearound_user_shake");
    assert_eq!(m.event(), Some("shakearoundusershake"));
    let chosen = group(&m.fields, "ChosenBeacon");
    assert_eq!(chosen.text("Distance"), Some("0.057"));
    let around = list(group(&m.fields, "AroundBeacons"), "AroundBeacon");
    assert_eq!(around.len(), 2);
    assert_eq!(item(&around[1]).text("Distance"), Some("15.013"));
    assert_eq!(item(&around[0]).text("Uuid"), Some("uuid"));
}

#[test]
fn stray_text_and_whitespace_around_values_as_real_senders_write_them() {
    let m = load("text_stray_text");
    assert_eq!(m.to_user, "gh_e136c6e50636");
    assert_eq!(m.from_user, "oMgHVjngRipVsoxg6TuX3vz6glDg");
    assert_eq!(m.create_time, 1408090502);
    assert_eq!(m.msg_id(), Some("6046355574112289314"));
    assert_eq!(
        m.content(),
        Some("  two spaces either side  "),
        "CDATA kept"
    );
    assert_eq!(m.fields.len(), 6, "the stray lines are not fields");
}

#[test]
fn subscribe_msg_popup_keeps_every_list() {
    let m = load("event_subscribe_msg_popup_event");
    assert_eq!(m.kind, MsgType::Event(EventType::SubscribeMsgPopupEvent));
    let lists = list(group(&m.fields, "SubscribeMsgPopupEvent"), "List");
    assert_eq!(lists.len(), 2);
    assert_eq!(
        item(&lists[0]).text("TemplateId"),
        Some("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc")
    );
    assert_eq!(
        item(&lists[0]).text("SubscribeStatusString"),
        Some("accept")
    );
    assert_eq!(
        item(&lists[1]).text("SubscribeStatusString"),
        Some("reject")
    );
    assert_eq!(item(&lists[1]).text("PopupScene"), Some("2"));
}

#[test]
fn subscribe_msg_change_and_sent_single_list_is_a_list() {
    let c = load("event_subscribe_msg_change_event");
    assert_eq!(c.kind, MsgType::Event(EventType::SubscribeMsgChangeEvent));
    let lists = list(group(&c.fields, "SubscribeMsgChangeEvent"), "List");
    assert_eq!(lists.len(), 1);
    assert_eq!(
        item(&lists[0]).text("SubscribeStatusString"),
        Some("reject")
    );

    let s = load("event_subscribe_msg_sent_event");
    assert_eq!(s.kind, MsgType::Event(EventType::SubscribeMsgSentEvent));
    let lists = list(group(&s.fields, "SubscribeMsgSentEvent"), "List");
    assert_eq!(item(&lists[0]).text("MsgID"), Some("1700827132819554304"));
    assert_eq!(item(&lists[0]).text("ErrorStatus"), Some("success"));
    assert_eq!(s.msg_id(), None, "the MsgID is nested, not top-level");
}

#[test]
fn kf_session_events() {
    let c = load("event_kf_create_session");
    assert_eq!(c.kind, MsgType::Event(EventType::KfCreateSession));
    assert_eq!(c.fields.text("KfAccount"), Some("test1@test"));
    let x = load("event_kf_close_session");
    assert_eq!(x.kind, MsgType::Event(EventType::KfCloseSession));
    assert_eq!(x.event(), Some("kf_close_session"));
    let s = load("event_kf_switch_session");
    assert_eq!(s.kind, MsgType::Event(EventType::KfSwitchSession));
    assert_eq!(s.fields.text("FromKfAccount"), Some("test1@test"));
    assert_eq!(s.fields.text("ToKfAccount"), Some("test2@test"));
}

#[test]
fn unknown_type_and_event_keep_their_fields() {
    let t = load("unknown_type");
    assert_eq!(t.kind, MsgType::Other("hologram".into()));
    assert_eq!(t.msg_type(), "hologram");
    assert_eq!(
        t.fields.text("HologramUrl"),
        Some("https://example.com/h.bin")
    );
    assert_eq!(t.dedup_key(), "fromUser|1234567890123457");

    let e = load("event_unknown");
    assert_eq!(
        e.kind,
        MsgType::Event(EventType::Other("teleport_finish".into()))
    );
    assert_eq!(e.event(), Some("teleport_finish"));
    assert_eq!(e.event_key(), Some("portal-7"));
    assert_eq!(group(&e.fields, "Detail").text("Zone"), Some("3"));
}

#[test]
fn every_fixture_parses_and_agrees_with_parse_fields() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let m = InboundMessage::parse(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(parse_fields(&bytes).unwrap(), m.fields, "{path:?}");
        assert_eq!(m.fields.text("ToUserName"), Some(m.to_user.as_str()));
        count += 1;
    }
    assert_eq!(count, 38, "one fixture per documented sample");
}

fn fixtures() -> Vec<Vec<u8>> {
    let mut all: Vec<_> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    all.sort();
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = InboundMessage::parse(&bytes);
        let _ = parse_fields(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_samples(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let samples = fixtures();
        let mut bytes = samples[pick.index(samples.len())].clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        if let Ok(m) = InboundMessage::parse(&bytes) {
            // Whatever survives mutation must still satisfy the model's invariants.
            prop_assert_eq!(m.fields.text("FromUserName"), Some(m.from_user.as_str()));
            let _ = m.dedup_key();
        }
    }
}
