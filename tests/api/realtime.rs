use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Socket, TestApp, assert_problem, connect, events_until, mock_ai, next_event_of, run_with,
};
use crate::on_both;

/// An agent answering through the mock model, streamed, and a session on it.
pub(crate) async fn streamed_session(
    app: &TestApp,
    owner: &crate::helpers::User,
) -> (String, String) {
    let p = app.project(owner, json!({"name": "Live agent"})).await;
    let agent_id = p["id"].as_str().unwrap().to_owned();
    let set = app
        .put(
            &format!("/api/projects/{agent_id}/provider"),
            &owner.token,
            json!({"base_url": mock_ai(), "model": "echo", "stream": true}),
        )
        .await;
    assert_eq!(set.status, 200);
    let s = app
        .post(
            "/api/chat/sessions",
            &owner.token,
            json!({"agent_id": agent_id}),
        )
        .await;
    (agent_id, s.body["id"].as_str().unwrap().to_owned())
}

pub(crate) async fn ticket_url(app: &TestApp, token: &str, session_id: Option<&str>) -> String {
    let body = match session_id {
        Some(id) => json!({"session_id": id}),
        None => json!({}),
    };
    let r = app.post("/api/realtime/tickets", token, body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["websocket_url"].as_str().unwrap().to_owned()
}

pub(crate) fn messages(events: &[Value]) -> Vec<(i64, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["message"]["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Reads events until the message with sequence number `seq` has arrived.
pub(crate) async fn until_seq(socket: &mut Socket, seq: i64) -> Vec<Value> {
    events_until(socket, |e| e["type"] == "message" && e["seq"] == seq).await
}

async fn live_chat_and_replay(app: TestApp) {
    let alice = app.register("alice").await;
    let vic = app.register("vic").await;
    let sam = app.register("sam").await;
    let (agent_id, id) = streamed_session(&app, &alice).await;
    // Sharing is notified to the new sharee, live.
    let mut vic_notes = connect(&ticket_url(&app, &vic.token, None).await)
        .await
        .unwrap();
    app.post(
        &format!("/api/projects/{agent_id}/share"),
        &alice.token,
        json!({"user_email": vic.email, "permission": "view"}),
    )
    .await;
    let shared = next_event_of(&mut vic_notes, "notification").await;
    assert_eq!(shared["kind"], "share");
    assert_eq!(shared["project_id"], agent_id.as_str());
    assert_eq!(shared["permission"], "view");

    let mut alice_notes = connect(&ticket_url(&app, &alice.token, None).await)
        .await
        .unwrap();
    let joined = app
        .post(
            &format!("/api/chat/sessions/{id}/join"),
            &vic.token,
            json!({}),
        )
        .await;
    let vic_url = joined.body["websocket_url"].as_str().unwrap().to_owned();
    let note = next_event_of(&mut alice_notes, "notification").await;
    assert_eq!(
        (note["kind"].as_str(), note["user_id"].as_str()),
        (Some("join"), Some(vic.id.as_str()))
    );

    let mut vic_socket = connect(&vic_url).await.expect("vic connects");
    // A ticket is single use.
    assert_eq!(connect(&vic_url).await.err(), Some(401));
    let mut alice_socket = connect(&ticket_url(&app, &alice.token, Some(&id)).await)
        .await
        .unwrap();

    // A message posted over HTTP reaches every participant live: the user's message, the
    // agent typing, its streamed tokens, then its stored reply.
    let posted = app
        .post(
            &format!("/api/chat/sessions/{id}/messages"),
            &alice.token,
            json!({"content": "hello live world"}),
        )
        .await;
    assert_eq!(posted.status, 201);
    let events = until_seq(&mut vic_socket, 2).await;
    assert_eq!(
        messages(&events),
        [(1, "user".to_owned()), (2, "agent".to_owned())]
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "typing" && e["agent_id"] == agent_id.as_str())
    );
    let streamed: String = events
        .iter()
        .filter(|e| e["type"] == "token")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, "You said: hello live world");
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == "token")
            .all(|e| e["reply_to"] == 1)
    );

    // A client may talk over the socket too.
    vic_socket
        .send(Message::Text(json!({"type": "typing"}).to_string().into()))
        .await
        .unwrap();
    let seen = events_until(&mut alice_socket, |e| {
        e["type"] == "typing" && e["user_id"] == vic.id.as_str()
    })
    .await;
    let typing = seen.last().unwrap();
    assert_eq!(typing["session_id"], id.as_str());
    vic_socket
        .send(Message::Text(
            json!({"type": "message", "content": "sent from a socket"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let events = until_seq(&mut vic_socket, 4).await;
    let own = events
        .iter()
        .find(|e| e["type"] == "message" && e["seq"] == 3)
        .expect("seq 3");
    assert_eq!(own["message"]["author_id"], vic.id.as_str());
    assert_eq!(own["message"]["content"], "sent from a socket");

    // Vic drops off; two more messages are posted; reconnecting with the last number seen
    // replays exactly what was missed, in order.
    vic_socket.close(None).await.unwrap();
    drop(vic_socket);
    app.post(
        &format!("/api/chat/sessions/{id}/messages"),
        &alice.token,
        json!({"content": "while you were away"}),
    )
    .await;
    let again = ticket_url(&app, &vic.token, Some(&id)).await;
    let mut vic_socket = connect(&format!("{again}&last_seq=4")).await.unwrap();
    let replay = until_seq(&mut vic_socket, 6).await;
    assert_eq!(
        messages(&replay),
        [(5, "user".to_owned()), (6, "agent".to_owned())]
    );
    // Then live again, nothing twice.
    app.post(
        &format!("/api/chat/sessions/{id}/messages"),
        &alice.token,
        json!({"content": "and now"}),
    )
    .await;
    let live = until_seq(&mut vic_socket, 8).await;
    assert_eq!(
        messages(&live),
        [(7, "user".to_owned()), (8, "agent".to_owned())]
    );

    // Refused before the upgrade: bad tickets, the wrong socket, strangers, other users.
    let base = app.base.replace("http://", "ws://");
    assert_eq!(
        connect(&format!("{base}/ws/chat/{id}")).await.err(),
        Some(401)
    );
    assert_eq!(
        connect(&format!("{base}/ws/chat/{id}?ticket=nova_forged"))
            .await
            .err(),
        Some(401)
    );
    let notes_ticket = ticket_url(&app, &vic.token, None).await;
    let ticket = notes_ticket.split("ticket=").nth(1).unwrap();
    assert_eq!(
        connect(&format!("{base}/ws/chat/{id}?ticket={ticket}"))
            .await
            .err(),
        Some(403)
    );
    assert_problem(
        &app.post(
            "/api/realtime/tickets",
            &sam.token,
            json!({"session_id": id}),
        )
        .await,
        404,
    );
    let sams = ticket_url(&app, &sam.token, None).await;
    let sams_ticket = sams.split("ticket=").nth(1).unwrap();
    assert_eq!(
        connect(&format!(
            "{base}/ws/notifications/{}?ticket={sams_ticket}",
            alice.id
        ))
        .await
        .err(),
        Some(403)
    );
    assert_eq!(
        connect(&format!("{base}/ws/chat/not-a-uuid?ticket=x"))
            .await
            .err(),
        Some(400)
    );
}
on_both!(live_chat_and_replay);

/// A client that stops reading is closed with 4008 (too slow) instead of holding events for
/// ever, and what reached it before the close came in order.
async fn a_client_that_stops_reading_is_closed_with_4008(app: TestApp) {
    use futures_util::StreamExt;
    let alice = app.register("alice").await;
    let (_, id) = streamed_session(&app, &alice).await;
    // A small receive buffer of its own (which also stops the kernel growing it), so that
    // what backs up is bounded by the host's send buffer.
    let url = ticket_url(&app, &alice.token, Some(&id)).await;
    let host: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|h| h.parse().ok())
        .expect("the ticket's host");
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(host).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .unwrap();

    // Each message is echoed by the agent word by word: about 6 MB of events in all, more
    // than the socket buffers between the host and a client that does not read.
    let long = "Words that fill the socket. ".repeat(700);
    for _ in 0..10 {
        let posted = app
            .post(
                &format!("/api/chat/sessions/{id}/messages"),
                &alice.token,
                json!({"content": long}),
            )
            .await;
        assert_eq!(posted.status, 201, "{:?}", posted.body);
    }

    // The host gives up on a send after 5 s; then the client reads what was queued.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut seqs = Vec::new();
    let read_to_close = async {
        while let Some(frame) = slow.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let event: Value = serde_json::from_str(&text).unwrap();
                    if event["type"] == "message" {
                        seqs.push(event["seq"].as_i64().unwrap());
                    }
                }
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => {}
                Err(e) => panic!("the socket failed before a close frame: {e}"),
            }
        }
        None
    };
    let close = tokio::time::timeout(Duration::from_secs(30), read_to_close)
        .await
        .expect("the slow socket is closed within 30 s")
        .expect("a close frame");
    assert_eq!(u16::from(close.code), 4008, "{close:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "what arrived came in order: {seqs:?}"
    );
}
on_both!(a_client_that_stops_reading_is_closed_with_4008);

/// Two host processes on one database and one Redis: a message posted to one reaches a
/// socket held by the other, and a host that shuts down closes its sockets with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_replicas_through_redis() {
    let Some((redis, backend)) = crate::helpers::redis_and_backend("two-replica") else {
        return;
    };
    let redis_for_a = redis.clone();
    run_with(
        backend,
        move |c| c.redis_url = Some(nova_host::config::Secret(redis_for_a)),
        |a: TestApp| async move {
            let dir = tempfile::tempdir().unwrap();
            let data_dir = dir.path().display().to_string();
            let (mut b_process, b_base) = crate::helpers::start_nova(&[
                ("DATABASE_URL", &a.database_url),
                ("REDIS_URL", &redis),
                ("NOVA_DATA_DIR", &data_dir),
            ])
            .await;
            let client = reqwest::Client::new();

            let alice = a.register("alice").await;
            let (_, id) = streamed_session(&a, &alice).await;
            // The ticket is made by B and the socket held by B; the message is posted to A.
            let ticket = client
                .post(format!("{b_base}/api/realtime/tickets"))
                .bearer_auth(&alice.token)
                .json(&json!({"session_id": id}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            let mut on_b = connect(ticket["websocket_url"].as_str().unwrap())
                .await
                .expect("socket on B");
            let mut on_a = connect(&ticket_url(&a, &alice.token, Some(&id)).await)
                .await
                .expect("socket on A");
            a.post(
                &format!("/api/chat/sessions/{id}/messages"),
                &alice.token,
                json!({"content": "across replicas"}),
            )
            .await;
            let events = until_seq(&mut on_b, 2).await;
            assert_eq!(
                messages(&events),
                [(1, "user".to_owned()), (2, "agent".to_owned())]
            );
            assert!(
                events.iter().any(|e| e["type"] == "token"),
                "streamed tokens cross too"
            );
            // And the other way round.
            let r = client
                .post(format!("{b_base}/api/chat/sessions/{id}/messages"))
                .bearer_auth(&alice.token)
                .json(&json!({"content": "back again"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
            let events = until_seq(&mut on_a, 4).await;
            assert!(messages(&events).contains(&(3, "user".to_owned())));

            // B shuts down gracefully: its socket is closed with 1001 (going away).
            let pid = b_process.id().expect("pid");
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            use futures_util::StreamExt;
            let close = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(Ok(msg)) = on_b.next().await {
                    if let Message::Close(frame) = msg {
                        return frame.map(|f| u16::from(f.code));
                    }
                }
                None
            })
            .await
            .expect("closed within 10 s");
            assert_eq!(close, Some(1001));
            let status = tokio::time::timeout(Duration::from_secs(10), b_process.wait())
                .await
                .expect("B exits")
                .unwrap();
            assert!(status.success(), "B exits cleanly: {status:?}");
        },
    )
    .await;
}

/// The close code a socket receives within 10 s (events before it skipped).
pub(crate) async fn close_code(socket: &mut Socket) -> Option<u16> {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = socket.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the socket closes within 10 s")
}

/// Revoking a share closes the grantee's chat socket; logging out closes the sockets opened
/// under that token (4403), and only those.
async fn revocation_closes_sockets(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (agent_id, session) = streamed_session(&app, &alice).await;
    app.share(&alice, &agent_id, &bob, "view").await;
    let joined = app
        .post(
            &format!("/api/chat/sessions/{session}/join"),
            &bob.token,
            json!({}),
        )
        .await;
    assert_eq!(joined.status, 200, "{:?}", joined.body);
    let mut bobs = connect(joined.body["websocket_url"].as_str().unwrap())
        .await
        .expect("bob's socket");
    let mut alices = connect(&ticket_url(&app, &alice.token, Some(&session)).await)
        .await
        .expect("alice's socket");

    let revoked = app
        .delete(
            &format!("/api/projects/{agent_id}/shares/{}", bob.id),
            &alice.token,
        )
        .await;
    assert_eq!(revoked.status, 204, "{:?}", revoked.body);
    assert_eq!(close_code(&mut bobs).await, Some(4403));

    // Alice logs in a second time; logging out the first session closes only its sockets.
    let second = app.login(&alice).await;
    let second_token = second.body["token"].as_str().unwrap().to_owned();
    let mut under_second = connect(&ticket_url(&app, &second_token, Some(&session)).await)
        .await
        .expect("socket under the second token");
    let mut notifications = connect(&ticket_url(&app, &alice.token, None).await)
        .await
        .expect("notifications socket");
    let out = app.post("/api/auth/logout", &alice.token, json!({})).await;
    assert_eq!(out.status, 204);
    assert_eq!(close_code(&mut alices).await, Some(4403));
    assert_eq!(close_code(&mut notifications).await, Some(4403));
    let posted = app
        .post(
            &format!("/api/chat/sessions/{session}/messages"),
            &second_token,
            json!({"content": "still here"}),
        )
        .await;
    assert_eq!(posted.status, 201, "{:?}", posted.body);
    assert_eq!(messages(&until_seq(&mut under_second, 2).await).len(), 2);
}
on_both!(revocation_closes_sockets);
