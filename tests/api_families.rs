//! Each API family's request shape (as recorded by the fake) and response handling.

mod support;

use bytes::Bytes;
use serde_json::json;
use support::fake::{last, setup};
use wechat_lua::api::kf::{KfArticle, KfMessage};
use wechat_lua::api::mass::{MassMessage, MassOptions, MassTarget};
use wechat_lua::api::media::{MediaFile, MediaType};
use wechat_lua::api::qrcode::Scene;
use wechat_lua::api::template::TemplateMessage;
use wechat_lua::fake_wechat::FakeWechat;

#[tokio::test]
async fn kf_send_and_typing() {
    let (fake, client) = setup().await;
    client
        .kf()
        .send_as(
            "oUSER",
            &KfMessage::text("Hello World"),
            Some("test1@kftest"),
        )
        .await
        .unwrap();
    let c = last(&fake, "/cgi-bin/message/custom/send");
    assert_eq!(c.method, "POST");
    assert_eq!(
        c.body.unwrap(),
        json!({"touser":"oUSER","msgtype":"text","text":{"content":"Hello World"},
               "customservice":{"kf_account":"test1@kftest"}})
    );
    let news = KfMessage::News {
        articles: vec![KfArticle {
            title: "Happy Day".into(),
            description: Some("Is Really A Happy Day".into()),
            url: "https://example.com".into(),
            picurl: None,
        }],
    };
    client.kf().send("oUSER", &news).await.unwrap();
    let body = last(&fake, "/cgi-bin/message/custom/send").body.unwrap();
    assert_eq!(body["msgtype"], "news");
    assert_eq!(body["news"]["articles"][0]["title"], "Happy Day");
    assert!(body.get("customservice").is_none());

    client.kf().typing("oUSER", true).await.unwrap();
    client.kf().typing("oUSER", false).await.unwrap();
    let t = fake.calls_to("/cgi-bin/message/custom/typing");
    assert_eq!(
        t[0].body,
        Some(json!({"touser":"oUSER","command":"Typing"}))
    );
    assert_eq!(
        t[1].body,
        Some(json!({"touser":"oUSER","command":"CancelTyping"}))
    );
}

#[tokio::test]
async fn mass_send_of_25000_openids_is_three_calls() {
    let (fake, client) = setup().await;
    let to: Vec<String> = (0..25_000).map(|i| format!("o{i:06}")).collect();
    let sent = client
        .mass()
        .send(
            &to,
            &MassMessage::MpNews {
                media_id: "M1".into(),
            },
            &MassOptions {
                clientmsgid: Some("spring".into()),
                send_ignore_reprint: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.len(), 3);
    let calls = fake.calls_to("/cgi-bin/message/mass/send");
    assert_eq!(calls.len(), 3);
    let sizes: Vec<usize> = calls
        .iter()
        .map(|c| c.body.as_ref().unwrap()["touser"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![10_000, 10_000, 5_000]);
    let all: Vec<String> = calls
        .iter()
        .flat_map(|c| {
            c.body.as_ref().unwrap()["touser"]
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(all, to, "every OpenID once, in order");
    let b = calls[2].body.as_ref().unwrap();
    assert_eq!(b["msgtype"], "mpnews");
    assert_eq!(b["mpnews"]["media_id"], "M1");
    assert_eq!(b["send_ignore_reprint"], 1);
    assert_eq!(b["clientmsgid"], "spring-2");
    assert_eq!(sent[0].clientmsgid, "spring-0");
    assert!(sent[0].msg_data_id.is_some());
    let ids: std::collections::HashSet<i64> = sent.iter().map(|s| s.msg_id).collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn mass_sendall_preview_delete_get_speed_uploadnews() {
    let (fake, client) = setup().await;
    let sent = client
        .mass()
        .sendall(
            MassTarget::Tag(2),
            &MassMessage::Text {
                content: "CONTENT".into(),
            },
            &MassOptions::default(),
        )
        .await
        .unwrap();
    let b = last(&fake, "/cgi-bin/message/mass/sendall").body.unwrap();
    assert_eq!(b["filter"], json!({"is_to_all": false, "tag_id": 2}));
    assert_eq!(b["text"], json!({"content": "CONTENT"}));
    assert_eq!(b["send_ignore_reprint"], 0);
    let generated = b["clientmsgid"].as_str().unwrap();
    assert!(!generated.is_empty() && generated.len() <= 64);
    assert_eq!(sent.clientmsgid, generated);

    client
        .mass()
        .sendall(
            MassTarget::All,
            &MassMessage::Voice {
                media_id: "V".into(),
            },
            &MassOptions::default(),
        )
        .await
        .unwrap();
    let b = last(&fake, "/cgi-bin/message/mass/sendall").body.unwrap();
    assert_eq!(b["filter"], json!({"is_to_all": true}));
    assert_ne!(b["clientmsgid"].as_str().unwrap(), generated);

    client
        .mass()
        .preview(
            "oUSER",
            &MassMessage::Text {
                content: "p".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/message/mass/preview").body.unwrap(),
        json!({"touser":"oUSER","msgtype":"text","text":{"content":"p"}})
    );
    client.mass().delete(sent.msg_id, 1).await.unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/message/mass/delete").body.unwrap(),
        json!({"msg_id": sent.msg_id, "article_idx": 1})
    );
    let st = client.mass().get(sent.msg_id).await.unwrap();
    assert_eq!(st["msg_status"], "SEND_SUCCESS");
    client.mass().speed_set(3).await.unwrap();
    assert_eq!(client.mass().speed_get().await.unwrap(), (3, 30));
    assert!(client.mass().speed_set(9).await.is_err());

    let media_id = client
        .mass()
        .uploadnews(&[json!({"thumb_media_id":"T","title":"t","content":"<p>c</p>"})])
        .await
        .unwrap();
    assert!(!media_id.is_empty());
    // A list of one OpenID is refused by WeChat (at least two).
    let err = client
        .mass()
        .send(
            &["oA".into()],
            &MassMessage::Text {
                content: "x".into(),
            },
            &MassOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), 40130);
}

#[tokio::test]
async fn template_family() {
    let (fake, client) = setup().await;
    let t = client.template();
    t.set_industry("1", "4").await.unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/template/api_set_industry")
            .body
            .unwrap(),
        json!({"industry_id1":"1","industry_id2":"4"})
    );
    let ind = t.get_industry().await.unwrap();
    assert!(ind["primary_industry"]["first_class"].is_string());
    let id = t.add_template("TM00015", &["金额", "时间"]).await.unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/template/api_add_template")
            .body
            .unwrap(),
        json!({"template_id_short":"TM00015","keyword_name_list":["金额","时间"]})
    );
    let list = t.get_all_private_template().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["template_id"], id.as_str());

    let mut msg = TemplateMessage::new("oUSER", id.clone())
        .with("keyword1", "39.8元", Some("#173177"))
        .with("keyword2", "2014年9月22日", None);
    msg.url = Some("http://weixin.qq.com/download".into());
    msg.client_msg_id = Some("order-1".into());
    let msgid = t.send(&msg).await.unwrap();
    assert!(msgid > 0);
    assert_eq!(
        last(&fake, "/cgi-bin/message/template/send").body.unwrap(),
        json!({"touser":"oUSER","template_id":id,"url":"http://weixin.qq.com/download",
               "client_msg_id":"order-1",
               "data":{"keyword1":{"value":"39.8元","color":"#173177"},"keyword2":{"value":"2014年9月22日"}}})
    );
    t.del_private_template(&id).await.unwrap();
    assert_eq!(t.send(&msg).await.unwrap_err().errcode(), 40037);
}

#[tokio::test]
async fn menu_family() {
    let (fake, client) = setup().await;
    assert_eq!(client.menu().get().await.unwrap_err().errcode(), 46003);
    let menu = json!({"button":[
        {"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"},
        {"name":"菜单","sub_button":[{"type":"view","name":"搜索","url":"http://www.soso.com/"}]}
    ]});
    client.menu().create(&menu).await.unwrap();
    assert_eq!(last(&fake, "/cgi-bin/menu/create").body.unwrap(), menu);
    assert_eq!(client.menu().get().await.unwrap()["menu"], menu);
    let cur = client.menu().get_current_selfmenu_info().await.unwrap();
    assert_eq!(cur["is_menu_open"], 1);
    client.menu().delete().await.unwrap();
    assert_eq!(last(&fake, "/cgi-bin/menu/delete").method, "GET");
    let four = json!({"button":[{"type":"click","name":"a","key":"a"},{"type":"click","name":"b","key":"b"},
                                {"type":"click","name":"c","key":"c"},{"type":"click","name":"d","key":"d"}]});
    assert_eq!(
        client.menu().create(&four).await.unwrap_err().errcode(),
        40016
    );
}

#[tokio::test]
async fn user_family_pages_and_batches() {
    let (fake, client) = setup().await;
    let followers = fake.add_followers(25_001);
    let all = client.user().all().await.unwrap();
    assert_eq!(all, followers);
    let pages = fake.calls_to("/cgi-bin/user/get");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].query_param("next_openid"), None);
    assert_eq!(
        pages[1].query_param("next_openid"),
        Some(followers[9_999].as_str())
    );

    let info = client.user().info(&followers[0], "en").await.unwrap();
    assert_eq!(info["subscribe"], 1);
    let c = last(&fake, "/cgi-bin/user/info");
    assert_eq!(c.query_param("openid"), Some(followers[0].as_str()));
    assert_eq!(c.query_param("lang"), Some("en"));

    let infos = client
        .user()
        .batchget(&followers[..150], "zh_CN")
        .await
        .unwrap();
    assert_eq!(infos.len(), 150);
    let calls = fake.calls_to("/cgi-bin/user/info/batchget");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].body.as_ref().unwrap()["user_list"][0],
        json!({"openid": followers[0], "lang": "zh_CN"})
    );
}

#[tokio::test]
async fn tags_family() {
    let (fake, client) = setup().await;
    let tags = client.tags();
    let id = tags.create("广东").await.unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/tags/create").body.unwrap(),
        json!({"tag":{"name":"广东"}})
    );
    let users: Vec<String> = (0..60).map(|i| format!("o{i}")).collect();
    tags.batchtagging(id, &users).await.unwrap();
    let calls = fake.calls_to("/cgi-bin/tags/members/batchtagging");
    assert_eq!(calls.len(), 2, "50 per call");
    assert_eq!(calls[0].body.as_ref().unwrap()["tagid"], id);
    assert_eq!(tags.getidlist("o1").await.unwrap(), vec![id]);
    let all = tags.get().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].count, 60);
    tags.batchuntagging(id, &users[..1]).await.unwrap();
    assert!(tags.getidlist("o0").await.unwrap().is_empty());
    tags.update(id, "广东人").await.unwrap();
    assert_eq!(
        last(&fake, "/cgi-bin/tags/update").body.unwrap(),
        json!({"tag":{"id":id,"name":"广东人"}})
    );
    tags.delete(id).await.unwrap();
    assert_eq!(tags.delete(id).await.unwrap_err().errcode(), 45159);
}

#[tokio::test]
async fn media_family_uploads_multipart_and_downloads_bytes() {
    let (fake, client) = setup().await;
    let file = MediaFile {
        filename: "cat.jpg".into(),
        content_type: Some("image/jpeg".into()),
        data: Bytes::from_static(b"\xff\xd8\xff\xe0fake-jpeg"),
    };
    let up = client
        .media()
        .upload(MediaType::Image, &file)
        .await
        .unwrap();
    let c = last(&fake, "/cgi-bin/media/upload");
    assert_eq!(c.query_param("type"), Some("image"));
    assert_eq!(c.parts.len(), 1);
    assert_eq!(c.parts[0].name, "media");
    assert_eq!(c.parts[0].filename.as_deref(), Some("cat.jpg"));
    assert_eq!(c.parts[0].data, file.data.to_vec());

    let got = client.media().get(&up.media_id).await.unwrap();
    assert_eq!(got.data, file.data);
    assert_eq!(got.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(got.filename.as_deref(), Some("cat.jpg"));
    assert_eq!(
        client.media().get("nope").await.unwrap_err().errcode(),
        40007
    );

    let video = MediaFile {
        filename: "v.mp4".into(),
        content_type: Some("video/mp4".into()),
        data: Bytes::from_static(b"mp4"),
    };
    let v = client
        .material()
        .add(MediaType::Video, &video, Some(("标题", "介绍")))
        .await
        .unwrap();
    assert!(v["media_id"].is_string());
    let c = last(&fake, "/cgi-bin/material/add_material");
    assert_eq!(c.query_param("type"), Some("video"));
    let desc = c.parts.iter().find(|p| p.name == "description").unwrap();
    let desc: serde_json::Value = serde_json::from_slice(&desc.data).unwrap();
    assert_eq!(desc, json!({"title":"标题","introduction":"介绍"}));
    let img = client
        .material()
        .add(MediaType::Image, &file, None)
        .await
        .unwrap();
    assert!(img["url"].is_string());
}

#[tokio::test]
async fn qrcode_family() {
    let (fake, client) = setup().await;
    let q = client
        .qrcode()
        .create_temporary(&Scene::Id(123), 604_800)
        .await
        .unwrap();
    assert_eq!(q.expire_seconds, Some(604_800));
    assert!(q
        .image_url()
        .starts_with("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="));
    assert_eq!(
        last(&fake, "/cgi-bin/qrcode/create").body.unwrap(),
        json!({"expire_seconds":604800,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":123}}})
    );
    let p = client
        .qrcode()
        .create_permanent(&Scene::Str("shop-7".into()))
        .await
        .unwrap();
    assert_eq!(p.expire_seconds, None);
    assert!(!p.ticket.is_empty());
    assert_eq!(
        last(&fake, "/cgi-bin/qrcode/create").body.unwrap()["action_name"],
        "QR_LIMIT_STR_SCENE"
    );
}

#[tokio::test]
async fn fake_rejects_missing_and_unknown_tokens_like_wechat() {
    let (fake, base) = FakeWechat::start().await.unwrap();
    let http = reqwest::Client::new();
    let v: serde_json::Value = http
        .get(format!("{base}/cgi-bin/menu/get"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 41001);
    let v: serde_json::Value = http
        .get(format!("{base}/cgi-bin/menu/get?access_token=bogus"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 40001);
    let r = http
        .get(format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            fake.appid(),
            fake.secret()
        ))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 7200);
    assert_eq!(v["access_token"].as_str(), fake.current_token().as_deref());
    assert_eq!(
        last(&fake, "/cgi-bin/token").query_param("secret"),
        Some("<secret>")
    );
}
