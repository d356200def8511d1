use serde_json::json;

use crate::helpers::{TestApp, assert_problem, column};
use crate::on_both;

async fn workspaces_and_members(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;

    let created = app
        .post(
            "/api/team/workspaces",
            &alice.token,
            json!({"name": "Support team"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["role"], "owner");
    assert_eq!(created.body["member_count"], 1);
    let ws = created.body["id"].as_str().unwrap().to_owned();
    assert_problem(
        &app.post("/api/team/workspaces", &alice.token, json!({"name": " "}))
            .await,
        422,
    );

    let mine = app.get("/api/team/workspaces", &alice.token).await;
    let names = column(&mine.body, "items", "name");
    assert_eq!(names, ["Support team", "alice's workspace"]);

    let members_path = format!("/api/team/workspaces/{ws}/members");
    // Strangers do not learn that the workspace exists.
    assert_problem(&app.get(&members_path, &bob.token).await, 404);

    let added = app
        .post(
            &members_path,
            &alice.token,
            json!({"email": bob.email, "role": "member"}),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["role"], "member");
    assert_problem(
        &app.post(
            &members_path,
            &alice.token,
            json!({"email": bob.email, "role": "admin"}),
        )
        .await,
        409,
    );
    assert_problem(
        &app.post(
            &members_path,
            &alice.token,
            json!({"email": "ghost@example.com", "role": "member"}),
        )
        .await,
        404,
    );
    assert_problem(
        &app.post(
            &members_path,
            &alice.token,
            json!({"email": carol.email, "role": "owner"}),
        )
        .await,
        422,
    );
    assert_problem(
        &app.post(
            &members_path,
            &alice.token,
            json!({"email": carol.email, "role": "boss"}),
        )
        .await,
        422,
    );

    // A member reads the list but cannot add anyone.
    let list = app.get(&members_path, &bob.token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert_problem(
        &app.post(
            &members_path,
            &bob.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await,
        403,
    );
    let theirs = app.get("/api/team/workspaces", &bob.token).await;
    assert_eq!(theirs.body["items"][0]["role"], "member");
    assert_eq!(theirs.body["items"][0]["member_count"], 2);

    // The owner cannot be removed; a member cannot remove the owner; a member may leave.
    assert_problem(
        &app.delete(&format!("{members_path}/{}", alice.id), &alice.token)
            .await,
        403,
    );
    assert_problem(
        &app.delete(&format!("{members_path}/{}", alice.id), &bob.token)
            .await,
        403,
    );
    assert_eq!(
        app.delete(&format!("{members_path}/{}", bob.id), &bob.token)
            .await
            .status,
        204
    );
    assert_problem(&app.get(&members_path, &bob.token).await, 404);

    // Admins add and remove members, but not other admins.
    app.post(
        &members_path,
        &alice.token,
        json!({"email": bob.email, "role": "admin"}),
    )
    .await;
    let c = app
        .post(
            &members_path,
            &bob.token,
            json!({"email": carol.email, "role": "member"}),
        )
        .await;
    assert_eq!(c.status, 201);
    assert_problem(
        &app.delete(&format!("{members_path}/{}", bob.id), &carol.token)
            .await,
        403,
    );
    assert_eq!(
        app.delete(&format!("{members_path}/{}", carol.id), &bob.token)
            .await
            .status,
        204
    );

    // The audit log is for owners and admins.
    let log = app
        .get(&format!("/api/audit-log?workspace_id={ws}"), &alice.token)
        .await;
    assert_eq!(log.status, 200);
    let actions = column(&log.body, "items", "action");
    assert_eq!(
        actions,
        [
            "member.remove",
            "member.add",
            "member.add",
            "member.remove",
            "member.add",
            "workspace.create"
        ]
    );
    let only_adds = app
        .get(
            &format!("/api/audit-log?workspace_id={ws}&action=member.add"),
            &bob.token,
        )
        .await;
    assert_eq!(only_adds.body["items"].as_array().unwrap().len(), 3);
    app.post(
        &members_path,
        &alice.token,
        json!({"email": carol.email, "role": "member"}),
    )
    .await;
    assert_problem(
        &app.get(&format!("/api/audit-log?workspace_id={ws}"), &carol.token)
            .await,
        403,
    );
    assert_problem(
        &app.get(
            &format!("/api/audit-log?workspace_id={}", alice.workspace_id),
            &bob.token,
        )
        .await,
        404,
    );
    assert_problem(
        &app.get("/api/audit-log?workspace_id=nope", &alice.token)
            .await,
        400,
    );
    // Without workspace_id: every workspace the caller owns or administers, and only those.
    let everywhere = app.get("/api/audit-log", &bob.token).await;
    assert_eq!(everywhere.status, 200, "{:?}", everywhere.body);
    let items = everywhere.body["items"].as_array().unwrap();
    let workspaces: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|i| i["workspace_id"].as_str().unwrap())
        .collect();
    assert!(workspaces.contains(ws.as_str()), "{workspaces:?}");
    assert!(
        workspaces.is_subset(
            &[ws.as_str(), bob.workspace_id.as_str()]
                .into_iter()
                .collect()
        ),
        "bob administers the team workspace and owns his own, and sees no other: {workspaces:?}"
    );
    assert!(items.iter().any(|i| i["action"] == "member.remove"));
    let carols = app.get("/api/audit-log", &carol.token).await;
    assert!(
        carols.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["workspace_id"] != ws.as_str()),
        "a member sees no entry of a workspace she does not administer"
    );
}
on_both!(workspaces_and_members);
