use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, column, run_with};
use crate::on_both;

async fn ids_of(app: &TestApp, token: &str) -> Vec<String> {
    let list = app
        .get("/api/projects?include_archived=true&limit=200", token)
        .await;
    list.body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn bulk_operations_are_all_or_nothing(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let p = app
            .project(
                &alice,
                json!({"name": format!("Agent {i}"), "settings": {"keep": i, "drop": true}}),
            )
            .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let bobs = app.project(&bob, json!({"name": "Bob's"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // update_settings merges, and `null` removes a key.
    let r = app
        .post("/api/projects/bulk", &alice.token, json!({"action": "update_settings", "project_ids": ids, "settings": {"tone": "formal", "drop": null}}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["succeeded"], 3);
    for (i, id) in ids.iter().enumerate() {
        let p = app.get(&format!("/api/projects/{id}"), &alice.token).await;
        assert_eq!(p.body["settings"], json!({"keep": i, "tone": "formal"}));
        assert_eq!(p.body["version"], 2);
    }

    // One id Alice may not touch: nothing happens, and each id's outcome is reported.
    let mixed: Vec<&str> = vec![&ids[0], &bobs, &ids[1]];
    let refused = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "archive", "project_ids": mixed}),
        )
        .await;
    assert_problem(&refused, 404);
    let results = refused.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], "rolled_back");
    assert_eq!(results[1]["status"], "not_found");
    assert!(
        app.get(&format!("/api/projects/{}", ids[0]), &alice.token)
            .await
            .body["archived_at"]
            .is_null()
    );

    // Shared with view only: deleting it is forbidden (403), and nothing is deleted.
    app.post(
        &format!("/api/projects/{bobs}/share"),
        &bob.token,
        json!({"user_email": alice.email, "permission": "view"}),
    )
    .await;
    let forbidden = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "delete", "project_ids": [ids[2], bobs]}),
        )
        .await;
    assert_problem(&forbidden, 403);
    assert_eq!(forbidden.body["results"][1]["status"], "forbidden");
    assert_eq!(
        app.get(&format!("/api/projects/{}", ids[2]), &alice.token)
            .await
            .status,
        200
    );

    // Duplicate: new ids, copies in the caller's workspace, including of a shared project.
    let dup = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "duplicate", "project_ids": [ids[0], bobs]}),
        )
        .await;
    assert_eq!(dup.status, 200, "{:?}", dup.body);
    let copy_ids: Vec<String> = dup.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["new_id"].as_str().unwrap().to_owned())
        .collect();
    let copy = app
        .get(&format!("/api/projects/{}", copy_ids[1]), &alice.token)
        .await;
    assert_eq!(copy.body["name"], "Bob's (copy)");
    assert_eq!(copy.body["workspace_id"], alice.workspace_id);
    assert_eq!(ids_of(&app, &alice.token).await.len(), 6);

    let archive = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "archive", "project_ids": [ids[0], ids[0], ids[1]]}),
        )
        .await;
    assert_eq!(
        archive.body["results"].as_array().unwrap().len(),
        2,
        "duplicate ids count once"
    );
    assert!(
        app.get(&format!("/api/projects/{}", ids[0]), &alice.token)
            .await
            .body["archived_at"]
            .is_string()
    );

    let delete = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "delete", "project_ids": copy_ids}),
        )
        .await;
    assert_eq!(delete.status, 200);
    assert_eq!(ids_of(&app, &alice.token).await.len(), 4);

    // Validation.
    for bad in [
        json!({"action": "archive", "project_ids": []}),
        json!({"action": "explode", "project_ids": [ids[0]]}),
        json!({"action": "update_settings", "project_ids": [ids[0]]}),
        json!({"action": "archive", "project_ids": [ids[0]], "settings": {}}),
        json!({"action": "archive", "project_ids": ["not-a-uuid"]}),
    ] {
        assert_problem(&app.post("/api/projects/bulk", &bob.token, bad).await, 422);
    }
    let too_many: Vec<String> = (0..501).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_problem(
        &app.post(
            "/api/projects/bulk",
            &bob.token,
            json!({"action": "archive", "project_ids": too_many}),
        )
        .await,
        422,
    );
    let max: Vec<String> = (0..500).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_problem(
        &app.post(
            "/api/projects/bulk",
            &bob.token,
            json!({"action": "archive", "project_ids": max}),
        )
        .await,
        404,
    );

    // Audited.
    let log = app
        .get(
            &format!(
                "/api/audit-log?workspace_id={}&action=project.bulk",
                alice.workspace_id
            ),
            &alice.token,
        )
        .await;
    let actions = column(&log.body, "items", "action");
    assert_eq!(
        actions,
        [
            "project.bulk.delete",
            "project.bulk.archive",
            "project.bulk.duplicate",
            "project.bulk.update_settings"
        ]
    );
    assert_eq!(
        log.body["items"][3]["details"]["project_ids"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(log.body["items"][3]["actor_id"], alice.id);
}
on_both!(bulk_operations_are_all_or_nothing);

async fn duplicate_with_overrides(app: TestApp) {
    let alice = app.register("alice").await;
    let source = app
        .project(&alice, json!({"name": "Source", "tags": ["a"], "settings": {"t": 1, "x": 2}, "model_config": {"model": "small"}, "system_prompt": "S"}))
        .await;
    let id = source["id"].as_str().unwrap();
    let copy = app
        .post(&format!("/api/projects/{id}/duplicate"), &alice.token,
            json!({"name": "Variant B", "settings": {"t": 9, "x": null}, "model_config": {"model": "large"}, "tags": ["b"], "status": "training"}))
        .await;
    assert_eq!(copy.status, 201, "{:?}", copy.body);
    assert_ne!(copy.body["id"], source["id"]);
    assert_eq!(copy.body["name"], "Variant B");
    assert_eq!(copy.body["settings"], json!({"t": 9}));
    assert_eq!(copy.body["model_config"], json!({"model": "large"}));
    assert_eq!(copy.body["tags"], json!(["b"]));
    assert_eq!(copy.body["status"], "training");
    assert_eq!(copy.body["system_prompt"], "S");
    // With no body at all, a plain copy.
    let plain = app
        .call(
            reqwest::Method::POST,
            &format!("/api/projects/{id}/duplicate"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(plain.status, 201, "{:?}", plain.body);
    assert_eq!(plain.body["name"], "Source (copy)");
    assert_eq!(plain.body["settings"], json!({"t": 1, "x": 2}));
    // The source is untouched.
    assert_eq!(
        app.get(&format!("/api/projects/{id}"), &alice.token)
            .await
            .body,
        source
    );
    assert_problem(
        &app.post(
            &format!("/api/projects/{id}/duplicate"),
            &alice.token,
            json!({"name": ""}),
        )
        .await,
        422,
    );
}
on_both!(duplicate_with_overrides);

async fn rate_limited(app: TestApp) {
    let alice = app.register("alice").await;
    let p = app.project(&alice, json!({"name": "P"})).await;
    let body = json!({"action": "update_settings", "project_ids": [p["id"]], "settings": {"n": 1}});
    for _ in 0..3 {
        assert_eq!(
            app.post("/api/projects/bulk", &alice.token, body.clone())
                .await
                .status,
            200
        );
    }
    let limited = app
        .post("/api/projects/bulk", &alice.token, body.clone())
        .await;
    assert_problem(&limited, 429);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Per user: Bob is not limited by Alice's requests.
    let bob = app.register("bob").await;
    let q = app.project(&bob, json!({"name": "Q"})).await;
    let r = app
        .post(
            "/api/projects/bulk",
            &bob.token,
            json!({"action": "archive", "project_ids": [q["id"]]}),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_is_rate_limited_per_user() {
    run_with(
        Backend::Sqlite,
        |c| c.bulk_rate_limit_per_minute = 3,
        rate_limited,
    )
    .await;
}

/// Two replicas on one database and one Redis count a user's bulk requests together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_shared_through_redis() {
    let Some((redis, backend)) = crate::helpers::redis_and_backend("Redis rate-limit") else {
        return;
    };
    let configure = |c: &mut nova_host::Config| {
        c.bulk_rate_limit_per_minute = 4;
        c.redis_url = Some(nova_host::config::Secret(redis.clone()));
    };
    run_with(backend, configure, |a: TestApp| async move {
        let b = a.replica(configure).await;
        let alice = a.register("alice").await;
        // Both replicas count in Redis once their link is up; until then (a fresh host
        // connects lazily) each counts on its own, as documented.
        for host in [&a, &b] {
            crate::helpers::eventually("the replica's Redis link", || async {
                let r = host.get("/readyz", &alice.token).await;
                (r.body["redis"] == "ok").then_some(())
            })
            .await;
        }
        let p = a.project(&alice, json!({"name": "P"})).await;
        let body =
            json!({"action": "update_settings", "project_ids": [p["id"]], "settings": {"n": 1}});
        let mut statuses = Vec::new();
        for replica in [&a, &b, &a, &b, &a, &b] {
            statuses.push(
                replica
                    .post("/api/projects/bulk", &alice.token, body.clone())
                    .await
                    .status,
            );
        }
        assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
        let _: Value = b.get("/api/user/me", &alice.token).await.body;
        b.finish().await;
    })
    .await;
}

async fn the_bulk_limit_counts_the_ids_sent(app: TestApp) {
    let alice = app.register("alice").await;
    let p = app.project(&alice, json!({"name": "Once"})).await;
    let id = p["id"].as_str().unwrap();
    let repeated: Vec<&str> = std::iter::repeat_n(id, 501).collect();
    let r = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "archive", "project_ids": repeated}),
        )
        .await;
    assert_problem(&r, 422);
    let listed = app.get("/api/projects", &alice.token).await;
    assert!(listed.body["projects"][0]["archived_at"].is_null());
}
on_both!(the_bulk_limit_counts_the_ids_sent);
