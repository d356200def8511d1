use serde_json::{Value, json};

use crate::helpers::{TestApp, User, assert_problem};
use crate::on_both;

async fn project_crud_and_templates(app: TestApp) {
    let alice = app.register("alice").await;
    let created = app
        .project(&alice, json!({
            "name": "Support Bot", "description": "Answers tickets", "tags": ["Customer-Support", "faq", "faq"],
            "settings": {"temperature": 0.2}, "system_prompt": "Be kind.", "model_config": {"model": "m"}
        }))
        .await;
    assert_eq!(created["status"], "active");
    assert_eq!(created["tags"], json!(["customer-support", "faq"]));
    assert_eq!(created["workspace_id"], alice.workspace_id);
    assert_eq!(created["owner_id"], alice.id);
    assert_eq!(created["version"], 1);
    assert_eq!(created["permission"], "admin");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/projects/{id}");

    assert_eq!(app.get(&path, &alice.token).await.body, created);

    for (bad, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "x", "tags": ["no/slash"]}), "tags"),
        (json!({"name": "x", "template_id": "nope"}), "template_id"),
        (
            json!({"name": "x", "workspace_id": "0190a6b0-0000-7000-8000-000000000000"}),
            "workspace_id",
        ),
        (json!({}), "name"),
    ] {
        let r = app.post("/api/projects", &alice.token, bad).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field);
    }

    let updated = app
        .put(
            &path,
            &alice.token,
            json!({"name": "Support Bot v2", "status": "paused", "tags": ["sales"], "version": 1}),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["name"], "Support Bot v2");
    assert_eq!(updated.body["status"], "paused");
    assert_eq!(
        updated.body["description"], "Answers tickets",
        "fields left out keep their value"
    );
    assert_eq!(updated.body["version"], 2);
    // A stale version is refused and changes nothing.
    let stale = app
        .put(
            &path,
            &alice.token,
            json!({"name": "Lost update", "version": 1}),
        )
        .await;
    assert_problem(&stale, 409);
    assert_eq!(
        app.get(&path, &alice.token).await.body["name"],
        "Support Bot v2"
    );
    assert_problem(
        &app.put(&path, &alice.token, json!({"status": "sleeping"}))
            .await,
        422,
    );
    assert_problem(
        &app.put(&path, &alice.token, json!({"settings": "not an object"}))
            .await,
        422,
    );

    // Templates: all four categories, real prompts, usable as defaults.
    let templates = app.get("/api/agent-templates", &alice.token).await;
    assert_eq!(templates.status, 200);
    let items = templates.body["items"].as_array().unwrap();
    let categories: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|t| t["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories.into_iter().collect::<Vec<_>>(),
        ["customer_support", "general", "hr", "sales"]
    );
    assert!(
        items
            .iter()
            .all(|t| t["system_prompt"].as_str().unwrap().len() > 200)
    );
    let hr = app
        .get("/api/agent-templates?category=hr", &alice.token)
        .await;
    assert!(
        hr.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["category"] == "hr")
    );
    assert_problem(
        &app.get("/api/agent-templates?category=legal", &alice.token)
            .await,
        400,
    );
    let first = app.get("/api/agent-templates?limit=3", &alice.token).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 3);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/agent-templates?limit=3&cursor={cursor}"),
            &alice.token,
        )
        .await;
    assert_eq!(second.body["items"][0]["id"], items[3]["id"]);

    let from_template = app
        .project(&alice, json!({"template_id": "hr-policy"}))
        .await;
    assert_eq!(from_template["name"], "HR Policy Assistant");
    assert_eq!(from_template["template_id"], "hr-policy");
    assert!(
        from_template["system_prompt"]
            .as_str()
            .unwrap()
            .contains("handbook")
    );
    assert_eq!(from_template["settings"]["temperature"], 0.2);
    let overridden = app.project(&alice, json!({"template_id": "hr-policy", "name": "People Ops", "settings": {"temperature": 0.9}})).await;
    assert_eq!(overridden["name"], "People Ops");
    assert_eq!(overridden["settings"], json!({"temperature": 0.9}));

    // Performance has the seed's shape, one point per day of the range.
    let perf = app.get(&format!("{path}/performance"), &alice.token).await;
    assert_eq!(perf.status, 200);
    for key in [
        "success_rate",
        "avg_response_time",
        "total_conversations",
        "user_satisfaction",
        "most_asked_questions",
        "error_rate",
    ] {
        assert!(perf.body["metrics"].get(key).is_some(), "metrics.{key}");
    }
    assert_eq!(perf.body["historical_data"].as_array().unwrap().len(), 30);
    let week = app
        .get(&format!("{path}/performance?time_range=7d"), &alice.token)
        .await;
    let days = week.body["historical_data"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(days[6]["date"], chrono::Utc::now().date_naive().to_string());
    assert_problem(
        &app.get(&format!("{path}/performance?time_range=1y"), &alice.token)
            .await,
        400,
    );
    let other = from_template["id"].as_str().unwrap();
    let cmp = app
        .get(
            &format!("/api/projects/comparison?ids={id},{other}"),
            &alice.token,
        )
        .await;
    assert_eq!(cmp.status, 200, "{:?}", cmp.body);
    assert_eq!(cmp.body["projects"][0]["id"], id.as_str());
    assert_eq!(cmp.body["projects"][1]["name"], "HR Policy Assistant");
    assert_problem(
        &app.get(&format!("/api/projects/comparison?ids={id}"), &alice.token)
            .await,
        400,
    );
    assert_problem(
        &app.get(
            &format!("/api/projects/comparison?ids={id},bad"),
            &alice.token,
        )
        .await,
        400,
    );

    assert_eq!(app.delete(&path, &alice.token).await.status, 204);
    assert_problem(&app.get(&path, &alice.token).await, 404);
    assert_problem(&app.delete(&path, &alice.token).await, 404);
}
on_both!(project_crud_and_templates);

fn names(list: &Value) -> Vec<String> {
    list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every project name of the caller's list by `sort`, read two at a time by the cursor.
async fn names_by_pages_of_two(app: &TestApp, user: &User, sort: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/projects?sort={sort}&limit=2");
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let page = app.get(&path, &user.token).await;
        assert_eq!(page.status, 200, "{sort}: {:?}", page.body);
        all.extend(names(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

async fn project_list_filters_sorts_and_pages(app: TestApp) {
    let alice = app.register("alice").await;
    let specs = [
        ("Alpha support", "active", vec!["support"]),
        ("Beta sales", "paused", vec!["sales"]),
        ("Gamma HR", "training", vec!["hr", "internal"]),
        ("Delta support 50%", "error", vec!["support", "internal"]),
        ("Epsilon", "active", vec![]),
    ];
    let mut ids = Vec::new();
    for (name, status, tags) in &specs {
        let p = app.project(&alice, json!({"name": name, "status": status, "tags": tags, "description": format!("{name} agent")})).await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    // Bob's projects never show up in Alice's list or facets.
    let bob = app.register("bob").await;
    app.project(&bob, json!({"name": "Bob's secret", "tags": ["secret"]}))
        .await;

    let all = app.get("/api/projects", &alice.token).await;
    assert_eq!(all.status, 200);
    assert_eq!(
        names(&all.body),
        [
            "Epsilon",
            "Delta support 50%",
            "Gamma HR",
            "Beta sales",
            "Alpha support"
        ]
    );
    assert_eq!(
        all.body["filters"]["available_tags"],
        json!(["hr", "internal", "sales", "support"])
    );
    assert_eq!(
        all.body["filters"]["status_options"],
        json!(["active", "paused", "training", "error"])
    );
    assert_eq!(
        all.body["filters"]["performance_metrics"],
        json!(["success_rate", "response_time", "satisfaction"])
    );
    assert_eq!(
        all.body["bulk_actions"],
        json!(["archive", "duplicate", "update_settings", "delete"])
    );
    assert!(all.body["next_cursor"].is_null());

    let by_tag = app
        .get("/api/projects?tag=support&sort=name", &alice.token)
        .await;
    assert_eq!(names(&by_tag.body), ["Alpha support", "Delta support 50%"]);
    let any_tag = app
        .get("/api/projects?tag=sales,hr&sort=name", &alice.token)
        .await;
    assert_eq!(names(&any_tag.body), ["Beta sales", "Gamma HR"]);
    let by_status = app
        .get(
            "/api/projects?status=active,paused&sort=-name",
            &alice.token,
        )
        .await;
    assert_eq!(
        names(&by_status.body),
        ["Epsilon", "Beta sales", "Alpha support"]
    );
    let text = app
        .get("/api/projects?q=SUPPORT&sort=created_at", &alice.token)
        .await;
    assert_eq!(names(&text.body), ["Alpha support", "Delta support 50%"]);
    // `%` is searched literally.
    let literal = app.get("/api/projects?q=50%25", &alice.token).await;
    assert_eq!(names(&literal.body), ["Delta support 50%"]);
    let combined = app
        .get("/api/projects?tag=internal&status=error", &alice.token)
        .await;
    assert_eq!(names(&combined.body), ["Delta support 50%"]);
    assert_problem(&app.get("/api/projects?sort=size", &alice.token).await, 400);
    assert_problem(
        &app.get("/api/projects?status=sleeping", &alice.token).await,
        400,
    );
    assert_problem(
        &app.get("/api/projects?cursor=garbage", &alice.token).await,
        400,
    );

    // Keyset pages for every sort: all projects once, in order.
    for sort in [
        "name",
        "-name",
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
    ] {
        let full = names(
            &app.get(&format!("/api/projects?sort={sort}"), &alice.token)
                .await
                .body,
        );
        let paged = names_by_pages_of_two(&app, &alice, sort).await;
        assert_eq!(paged, full, "paging by {sort}");
        assert_eq!(paged.len(), 5);
    }
    // A cursor belongs to its sort.
    let page = app
        .get("/api/projects?sort=name&limit=2", &alice.token)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    assert_problem(
        &app.get(
            &format!("/api/projects?sort=created_at&cursor={cursor}"),
            &alice.token,
        )
        .await,
        400,
    );

    // Workspace filter and archived projects.
    let team = app
        .post(
            "/api/team/workspaces",
            &alice.token,
            json!({"name": "Team"}),
        )
        .await;
    let team_id = team.body["id"].as_str().unwrap();
    app.project(&alice, json!({"name": "Team bot", "workspace_id": team_id}))
        .await;
    let in_team = app
        .get(
            &format!("/api/projects?workspace_id={team_id}"),
            &alice.token,
        )
        .await;
    assert_eq!(names(&in_team.body), ["Team bot"]);
    let archived = app
        .post(
            "/api/projects/bulk",
            &alice.token,
            json!({"action": "archive", "project_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(archived.status, 200);
    let visible = app.get("/api/projects?sort=name", &alice.token).await;
    assert!(!names(&visible.body).contains(&"Alpha support".to_owned()));
    let with_archived = app
        .get(
            "/api/projects?sort=name&include_archived=true",
            &alice.token,
        )
        .await;
    assert_eq!(names(&with_archived.body)[0], "Alpha support");

    // The tag facet follows changes, deletions and shares.
    let facet = |list: &Value| list["filters"]["available_tags"].clone();
    app.put(
        &format!("/api/projects/{}", ids[2]),
        &alice.token,
        json!({"tags": ["people"]}),
    )
    .await;
    assert_eq!(
        app.delete(&format!("/api/projects/{}", ids[1]), &alice.token)
            .await
            .status,
        204
    );
    let list = app.get("/api/projects", &alice.token).await;
    assert_eq!(facet(&list.body), json!(["internal", "people", "support"]));
    let secret = app.get("/api/projects?q=secret", &bob.token).await;
    let secret_id = secret.body["projects"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/projects/{secret_id}/share"),
        &bob.token,
        json!({"user_email": alice.email, "permission": "view"}),
    )
    .await;
    let list = app.get("/api/projects", &alice.token).await;
    assert_eq!(
        facet(&list.body),
        json!(["internal", "people", "secret", "support"])
    );
    let team_only = app
        .get(
            &format!("/api/projects?workspace_id={team_id}"),
            &alice.token,
        )
        .await;
    assert_eq!(facet(&team_only.body), json!([]));
}
on_both!(project_list_filters_sorts_and_pages);

async fn the_list_holds_each_project_of_the_callers_workspaces_and_shares_once(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    // Carol's team, where Alice is a member; Bob's personal workspace, where she is not.
    let team = app
        .post(
            "/api/team/workspaces",
            &carol.token,
            json!({"name": "Carol's team"}),
        )
        .await;
    let team_id = team.body["id"].as_str().unwrap().to_owned();
    let added = app
        .post(
            &format!("/api/team/workspaces/{team_id}/members"),
            &carol.token,
            json!({"email": alice.email, "role": "member"}),
        )
        .await;
    assert!(added.status < 300, "{:?}", added.body);
    let mut expected = Vec::new();
    for i in 0..3 {
        let name = format!("Alice {i}");
        app.project(&alice, json!({"name": name})).await;
        expected.push(name);
    }
    for i in 0..3 {
        let name = format!("Team {i}");
        let p = app
            .project(&carol, json!({"name": name, "workspace_id": team_id}))
            .await;
        // A project Alice sees both as a member and by a share comes once.
        if i == 0 {
            app.share(&carol, p["id"].as_str().unwrap(), &alice, "admin")
                .await;
        }
        expected.push(name);
    }
    for i in 0..4 {
        let name = format!("Bob {i}");
        let p = app.project(&bob, json!({"name": name})).await;
        if i % 2 == 0 {
            app.share(&bob, p["id"].as_str().unwrap(), &alice, "view")
                .await;
            expected.push(name);
        }
    }
    expected.sort();

    for sort in ["name", "-updated_at", "created_at"] {
        let mut seen = names_by_pages_of_two(&app, &alice, sort).await;
        seen.sort();
        assert_eq!(seen, expected, "paging by {sort}");
    }
    // The permission comes from the strongest grant: the shared team project is `admin`.
    let listed = app.get("/api/projects?sort=name", &alice.token).await;
    let permission_of = |name: &str| {
        listed.body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["permission"].clone())
    };
    assert_eq!(permission_of("Team 0"), Some(json!("admin")));
    assert_eq!(permission_of("Team 1"), Some(json!("edit")));
    assert_eq!(permission_of("Bob 0"), Some(json!("view")));
    // A workspace filter keeps to that workspace, shares included.
    let in_team = app
        .get(
            &format!("/api/projects?workspace_id={team_id}&sort=name"),
            &alice.token,
        )
        .await;
    assert_eq!(names(&in_team.body), ["Team 0", "Team 1", "Team 2"]);
    let in_bobs = app
        .get(
            &format!("/api/projects?workspace_id={}&sort=name", bob.workspace_id),
            &alice.token,
        )
        .await;
    assert_eq!(names(&in_bobs.body), ["Bob 0", "Bob 2"]);
}
on_both!(the_list_holds_each_project_of_the_callers_workspaces_and_shares_once);

async fn of_twenty_concurrent_updates_from_one_version_one_wins(app: TestApp) {
    let alice = app.register("alice").await;
    let p = app.project(&alice, json!({"name": "Contended"})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let version = p["version"].as_i64().unwrap();
    let updates = (0..20).map(|i| {
        let app = app.clone();
        let token = alice.token.clone();
        let id = id.clone();
        tokio::spawn(async move {
            app.put(
                &format!("/api/projects/{id}"),
                &token,
                json!({"description": format!("writer {i}"), "version": version}),
            )
            .await
            .status
        })
    });
    let mut statuses = Vec::new();
    for update in updates.collect::<Vec<_>>() {
        statuses.push(update.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let now = app.get(&format!("/api/projects/{id}"), &alice.token).await;
    assert_eq!(now.body["version"], version + 1);
}
on_both!(of_twenty_concurrent_updates_from_one_version_one_wins);
