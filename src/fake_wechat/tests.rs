use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};

use super::state::{errmsg_for, parse_multipart};
use super::*;

#[test]
fn multipart_is_parsed() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nJPEGDATA\r\n--XyZ\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{\"title\":\"t\"}\r\n--XyZ--\r\n";
    let parts = parse_multipart("multipart/form-data; boundary=XyZ", body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].name, "media");
    assert_eq!(parts[0].filename.as_deref(), Some("a.jpg"));
    assert_eq!(parts[0].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(parts[0].data, b"JPEGDATA");
    assert_eq!(parts[1].name, "description");
    assert_eq!(parts[1].data, b"{\"title\":\"t\"}");
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

fn get(path: String) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn stable_token(force: bool) -> Request<Body> {
    Request::post("/cgi-bin/stable_token")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"grant_type":"client_credential","appid":FAKE_APPID,
                   "secret":FAKE_SECRET,"force_refresh":force})
            .to_string(),
        ))
        .unwrap()
}

fn classic_token() -> Request<Body> {
    get(format!(
        "/cgi-bin/token?grant_type=client_credential&appid={FAKE_APPID}&secret={FAKE_SECRET}"
    ))
}

#[tokio::test]
async fn usable_in_process_as_a_router() {
    let fake = FakeWechat::default();
    let app = fake.router();
    let (_, v) = call(&app, stable_token(false)).await;
    let t1 = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(v["expires_in"], 7200);
    // Normal mode hands back the same token; force_refresh issues a new one.
    let (_, v) = call(&app, stable_token(false)).await;
    assert_eq!(v["access_token"], t1.as_str());
    let (_, v) = call(&app, stable_token(true)).await;
    let t2 = v["access_token"].as_str().unwrap().to_string();
    assert_ne!(t1, t2);
    assert_eq!(fake.token_fetches(), 3);

    let (_, v) = call(&app, get(format!("/cgi-bin/menu/get?access_token={t1}"))).await;
    assert_eq!(
        v["errcode"], 40001,
        "force_refresh revoked the previous token"
    );
    let (_, v) = call(&app, get(format!("/cgi-bin/menu/get?access_token={t2}"))).await;
    assert_eq!(v["errcode"], 46003);
    fake.expire_tokens();
    let (_, v) = call(&app, get(format!("/cgi-bin/menu/get?access_token={t2}"))).await;
    assert_eq!(v["errcode"], 42001);
    let (status, v) = call(&app, get(format!("/cgi-bin/nope?access_token={t2}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["errcode"], 40066);

    let bad = Request::post("/cgi-bin/stable_token")
        .body(Body::from(
            json!({"grant_type":"client_credential","appid":FAKE_APPID,"secret":"x"}).to_string(),
        ))
        .unwrap();
    let (_, v) = call(&app, bad).await;
    assert_eq!(v["errcode"], 40125);
    assert_eq!(fake.calls().len(), 8);
}

#[tokio::test]
async fn calls_are_checked_in_order_token_then_body_and_unknown_paths_need_no_token() {
    let fake = FakeWechat::default();
    let app = fake.router();
    let (status, v) = call(&app, get("/cgi-bin/nope".into())).await;
    assert_eq!(
        (status, v["errcode"].as_i64()),
        (StatusCode::NOT_FOUND, Some(40066))
    );
    let (_, v) = call(&app, get("/cgi-bin/menu/get".into())).await;
    assert_eq!(v["errcode"], 41001);
    let (_, v) = call(&app, get("/cgi-bin/menu/get?access_token=forged".into())).await;
    assert_eq!(v["errcode"], 40001);
    let (_, v) = call(&app, stable_token(false)).await;
    let token = v["access_token"].as_str().unwrap().to_string();
    let post = |path: &str| {
        Request::post(format!("{path}?access_token={token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (_, v) = call(&app, post("/cgi-bin/message/custom/send")).await;
    assert_eq!(v["errcode"], 44002, "a POST needs a body");
    let (_, v) = call(&app, post("/cgi-bin/menu/delete")).await;
    assert_eq!(v["errcode"], 0, "except menu/delete");
    fake.fail_next("/cgi-bin/nope", -1, 1);
    let (status, v) = call(&app, get("/cgi-bin/nope".into())).await;
    assert_eq!((status, v["errcode"].as_i64()), (StatusCode::OK, Some(-1)));
}

#[tokio::test]
async fn the_query_is_decoded_and_recorded_without_the_token() {
    let fake = FakeWechat::default();
    let app = fake.router();
    call(
        &app,
        get("/cgi-bin/user/info?access_token=T&openid=%E4%B8%AD+x&lang".into()),
    )
    .await;
    let recorded = fake.calls_to("/cgi-bin/user/info").pop().unwrap();
    assert_eq!(
        recorded.query,
        vec![
            ("openid".to_string(), "中 x".to_string()),
            ("lang".to_string(), String::new())
        ]
    );
    call(&app, classic_token()).await;
    let recorded = fake.calls_to("/cgi-bin/token").pop().unwrap();
    assert_eq!(recorded.query_param("secret"), Some("<secret>"));
}

/// The fake's tokens live on tokio's clock: with paused time a test sees a token expire,
/// and a replaced classic token keep working for its five minutes, without waiting.
#[tokio::test(start_paused = true)]
async fn tokens_expire_on_the_paused_clock() {
    let fake = FakeWechat::default();
    fake.set_token_ttl(Duration::from_secs(600));
    let app = fake.router();
    let token = |v: Value| v["access_token"].as_str().unwrap().to_string();
    let menu = |t: &str| get(format!("/cgi-bin/menu/get?access_token={t}"));

    let first = token(call(&app, classic_token()).await.1);
    let second = token(call(&app, classic_token()).await.1);
    tokio::time::advance(Duration::from_secs(299)).await;
    assert_eq!(
        call(&app, menu(&first)).await.1["errcode"],
        46003,
        "still in its grace"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(call(&app, menu(&first)).await.1["errcode"], 42001);
    assert_eq!(call(&app, menu(&second)).await.1["errcode"], 46003);
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(call(&app, menu(&second)).await.1["errcode"], 42001);
}

/// A delayed endpoint answers after the delay, measured on the paused clock.
#[tokio::test(start_paused = true)]
async fn delays_run_on_the_paused_clock() {
    let fake = FakeWechat::default();
    fake.delay("/cgi-bin/nope", Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    let (status, _) = call(&fake.router(), get("/cgi-bin/nope".into())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[test]
fn errmsg_40164_names_the_ip() {
    assert!(errmsg_for(40164, "198.51.100.9").contains("invalid ip 198.51.100.9"));
}

/// Each recorded call keeps the fake's answer, so a viewer can tell a refusal from a
/// delivery: refused (with the errmsg, no `rid`), worked, injected failure, unknown path.
#[tokio::test]
async fn recorded_calls_keep_their_answers() {
    let fake = FakeWechat::default();
    let app = fake.router();
    let (_, v) = call(&app, stable_token(false)).await;
    let token = v["access_token"].as_str().unwrap().to_string();
    let send = |template_id: &str| {
        Request::post(format!(
            "/cgi-bin/message/template/send?access_token={token}"
        ))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"touser": "o_u", "template_id": template_id, "data": {}}).to_string(),
        ))
        .unwrap()
    };
    assert_eq!(call(&app, send("TPL1")).await.1["errcode"], 40037);
    assert!(fake.add_template("TPL1", "Order shipped"));
    assert!(!fake.add_template("TPL1", "again"), "added once");
    assert_eq!(call(&app, send("TPL1")).await.1["errcode"], 0);
    fake.fail_next("/cgi-bin/message/template/send", 45009, 1);
    call(&app, send("TPL1")).await;
    fake.clear_calls();
    call(&app, get(format!("/cgi-bin/nope?access_token={token}"))).await;

    let refusals: Vec<_> = fake
        .calls()
        .iter()
        .map(|c| c.answer.as_ref().unwrap().refusal())
        .collect();
    assert_eq!(refusals, [Some((40066, "invalid url".to_string()))]);
    assert_eq!(fake.calls()[0].answer.as_ref().unwrap().status, 404);
    assert_eq!(fake.call_count(), 5, "forgotten calls still counted");
    assert_eq!(
        fake.templates(),
        [("TPL1".to_string(), "Order shipped".to_string())]
    );
}

/// `user/info` follows what `follow` and `unfollow` say, as `chat`'s /subscribe and
/// /unsubscribe use them.
#[tokio::test]
async fn followers_come_and_go() {
    let fake = FakeWechat::default();
    let app = fake.router();
    let (_, v) = call(&app, stable_token(false)).await;
    let token = v["access_token"].as_str().unwrap().to_string();
    let info = || {
        get(format!(
            "/cgi-bin/user/info?access_token={token}&openid=o_u"
        ))
    };
    assert_eq!(call(&app, info()).await.1["subscribe"], 0);
    fake.follow("o_u");
    fake.follow("o_u");
    assert_eq!(call(&app, info()).await.1["subscribe"], 1);
    assert!(fake.is_follower("o_u"));
    fake.unfollow("o_u");
    assert_eq!(call(&app, info()).await.1["subscribe"], 0);
    let calls = fake.calls_to("/cgi-bin/user/info");
    assert_eq!(calls.len(), 3);
    assert!(calls
        .iter()
        .all(|c| c.answer.as_ref().is_some_and(|a| a.refusal().is_none())));
}

#[tokio::test]
async fn watchers_hear_of_each_call_once_it_is_answered() {
    let fake = FakeWechat::default();
    let app = fake.router();
    let mut watcher = fake.watch_calls();
    let mut second = fake.watch_calls();
    call(&app, stable_token(false)).await;
    call(&app, get("/cgi-bin/nothing/here?access_token=x".into())).await;
    let first = watcher.try_recv().expect("the token call");
    assert_eq!(first.path, "/cgi-bin/stable_token");
    assert_eq!(first.body.as_ref().unwrap()["secret"], "<secret>");
    assert_eq!(first.answer.as_ref().unwrap().status, 200);
    let unknown = watcher.try_recv().expect("the unknown path");
    assert_eq!(unknown.answer.unwrap().status, 404);
    assert!(watcher.try_recv().is_err(), "each call once");
    assert_eq!(second.try_recv().unwrap().path, "/cgi-bin/stable_token");
}
