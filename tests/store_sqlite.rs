//! The embedded store across a "restart" (dropping and reopening the file) and with
//! two stores on one file, as two processes would have.

mod support;

use std::sync::Arc;
use std::time::Duration;

use wechat_lua::store::{self, OutboxItem, SqliteStore, Store};

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(30);
    {
        let s = store::open(None, dir.path()).await.unwrap();
        s.set("data:name", "\"小明\"", None).await.unwrap();
        s.set("token:wx1", "tok", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        s.set("gone", "x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        assert_eq!(s.incr("data:n", 41).await.unwrap(), 41);
        for (id, at) in [("a", 1_000), ("b", 2_000)] {
            s.outbox_push(&OutboxItem {
                id: id.into(),
                payload: "{}".into(),
                attempts: 0,
                next_at_unix_ms: at,
                created_at_unix_ms: 500,
                last_error: None,
            })
            .await
            .unwrap();
        }
        // a is in flight when the host stops.
        assert_eq!(s.outbox_take_due(1_500, 10, lease).await.unwrap().len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    let s = store::open(None, dir.path()).await.unwrap();
    assert_eq!(
        s.get("data:name").await.unwrap().as_deref(),
        Some("\"小明\"")
    );
    assert_eq!(s.get("token:wx1").await.unwrap().as_deref(), Some("tok"));
    assert_eq!(s.get("gone").await.unwrap(), None);
    assert_eq!(s.incr("data:n", 1).await.unwrap(), 42);
    assert_eq!(s.outbox_len().await.unwrap(), 2);
    // The lease taken before the restart still holds; b is due.
    let due = s.outbox_take_due(2_000, 10, lease).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, "b");
    let due = s.outbox_take_due(31_500, 10, lease).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_lose_no_increment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for _ in 0..50 {
                    s.incr("n", 1).await.unwrap();
                }
                s.set_nx("claim", &i.to_string(), None).await.unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(a.get("n").await.unwrap().as_deref(), Some("400"));
}

/// The real binary, SIGKILLed right after answering messages whose handler wrote to the
/// embedded store: every write the host acknowledged (a reply sent after `wx.store.set` or
/// `incr` returned) is there after the restart. WAL with `synchronous=NORMAL` writes each
/// commit to the WAL file before the call returns; no shutdown or checkpoint runs on a kill.
#[test]
fn acknowledged_writes_survive_kill_9_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/main.lua"),
        r#"
wx.on('text', function(msg)
  if msg.content == 'read' then
    return tostring(wx.store.get('name')) .. ' ' .. tostring(wx.store.get('n'))
  end
  assert(wx.store.set('name', msg.content))
  return 'n=' .. assert(wx.store.incr('n'))
end)
"#,
    )
    .unwrap();
    let env = [("WECHAT_TOKEN", support::TOKEN)];
    let server = support::Server::start(dir.path(), &[], &env);
    let post = |server: &support::Server, content: &str, msg_id: u64| {
        let (status, xml) = server.post(&support::text_xml("oKILL", content, msg_id));
        assert_eq!(status, 200, "{xml}");
        support::element(&xml, "Content")
    };
    for i in 1..=25_u64 {
        assert_eq!(
            post(&server, &format!("v{i}"), i).as_deref(),
            Some(format!("n={i}").as_str())
        );
    }
    // Straight after the last acknowledgement: nothing had time to checkpoint or flush.
    server.kill();

    let server = support::Server::start(dir.path(), &[], &env);
    assert_eq!(post(&server, "read", 100).as_deref(), Some("v25 25"));
}
