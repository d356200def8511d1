//! Who may do what to a project: owner, workspace admin and member, shares of each
//! permission, an expired share, a stranger and no token, across every project endpoint.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, User, column};
use crate::on_both;

struct Actor<'a> {
    label: &'a str,
    token: Option<&'a str>,
}

fn actor<'a>(label: &'a str, user: &'a User) -> Actor<'a> {
    Actor {
        label,
        token: Some(&user.token),
    }
}

async fn expect(
    app: &TestApp,
    actor: &Actor<'_>,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    status: u16,
) {
    let r = app.call(method.clone(), path, actor.token, body).await;
    assert_eq!(
        r.status, status,
        "{} {method} {path}: {:?}",
        actor.label, r.body
    );
    if status >= 400 {
        assert!(r.content_type().starts_with("application/problem+json"));
        assert!(
            r.body.get("name").is_none(),
            "an error leaks no project data"
        );
    }
}

async fn permission_matrix(app: TestApp) {
    let alice = app.register("alice").await; // workspace owner
    let adam = app.register("adam").await; // workspace admin
    let mia = app.register("mia").await; // workspace member
    let vic = app.register("vic").await; // share: view
    let eddie = app.register("eddie").await; // share: edit
    let ada = app.register("ada").await; // share: admin
    let exp = app.register("exp").await; // share: expired
    let sam = app.register("sam").await; // stranger
    let target = app.register("target").await; // someone to share with

    let ws = app
        .post(
            "/api/team/workspaces",
            &alice.token,
            json!({"name": "Team"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = format!("/api/team/workspaces/{ws}/members");
    app.post(
        &members,
        &alice.token,
        json!({"email": adam.email, "role": "admin"}),
    )
    .await;
    app.post(
        &members,
        &alice.token,
        json!({"email": mia.email, "role": "member"}),
    )
    .await;
    let project = app
        .project(&alice, json!({"name": "Shared bot", "workspace_id": ws}))
        .await;
    let id = project["id"].as_str().unwrap().to_owned();
    let path = format!("/api/projects/{id}");
    for (user, permission) in [(&vic, "view"), (&eddie, "edit"), (&ada, "admin")] {
        let r = app
            .post(&format!("{path}/share"), &alice.token, json!({"user_email": user.email, "permission": permission, "expiry_date": "2999-12-31"}))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(
            r.body["expires_at"], "3000-01-01T00:00:00Z",
            "a date lasts through its end"
        );
    }
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = app
        .post(
            &format!("{path}/share"),
            &alice.token,
            json!({"user_email": exp.email, "permission": "admin", "expiry_date": soon}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Share validation.
    let bad = app
        .post(
            &format!("{path}/share"),
            &alice.token,
            json!({"user_email": target.email, "permission": "own"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let past = app
        .post(
            &format!("{path}/share"),
            &alice.token,
            json!({"user_email": target.email, "permission": "view", "expiry_date": "2020-01-01"}),
        )
        .await;
    assert_eq!(past.status, 422);
    let nobody = app
        .post(
            &format!("{path}/share"),
            &alice.token,
            json!({"user_email": "ghost@example.com", "permission": "view"}),
        )
        .await;
    assert_eq!(nobody.status, 422);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;

    let owner = actor("owner", &alice);
    let admin = actor("workspace admin", &adam);
    let member = actor("member", &mia);
    let view = actor("share view", &vic);
    let edit = actor("share edit", &eddie);
    let share_admin = actor("share admin", &ada);
    let expired = actor("expired share", &exp);
    let stranger = actor("stranger", &sam);
    let anonymous = Actor {
        label: "no token",
        token: None,
    };

    // Reading: everyone with a live grant.
    for (who, status) in [
        (&owner, 200),
        (&admin, 200),
        (&member, 200),
        (&view, 200),
        (&edit, 200),
        (&share_admin, 200),
        (&expired, 404),
        (&stranger, 404),
        (&anonymous, 401),
    ] {
        expect(&app, who, Method::GET, &path, None, status).await;
        expect(
            &app,
            who,
            Method::GET,
            &format!("{path}/performance"),
            None,
            status,
        )
        .await;
        let list = app
            .call(Method::GET, "/api/projects", who.token, None)
            .await;
        if status == 200 {
            let ids = column(&list.body, "projects", "id");
            assert!(ids.contains(&id.as_str()), "{} lists it", who.label);
        } else if status == 404 {
            assert!(
                list.body["projects"].as_array().unwrap().is_empty(),
                "{} lists nothing",
                who.label
            );
        } else {
            assert_eq!(list.status, 401);
        }
    }
    let me = app.get(&path, &vic.token).await;
    assert_eq!(me.body["permission"], "view");
    assert_eq!(app.get(&path, &mia.token).await.body["permission"], "edit");
    assert_eq!(
        app.get(&path, &adam.token).await.body["permission"],
        "admin"
    );

    // Changing: edit and above.
    for (who, status) in [
        (&view, 403),
        (&expired, 404),
        (&stranger, 404),
        (&anonymous, 401),
        (&owner, 200),
        (&admin, 200),
        (&member, 200),
        (&edit, 200),
        (&share_admin, 200),
    ] {
        expect(
            &app,
            who,
            Method::PUT,
            &path,
            Some(json!({"description": format!("by {}", who.label)})),
            status,
        )
        .await;
    }
    assert_eq!(
        app.get(&path, &alice.token).await.body["description"],
        "by share admin"
    );
    for (who, status) in [
        (&view, 403),
        (&expired, 404),
        (&stranger, 404),
        (&edit, 200),
    ] {
        expect(&app, who, Method::POST, "/api/projects/bulk", Some(json!({"action": "update_settings", "project_ids": [id], "settings": {"k": who.label}})), status).await;
    }
    assert_eq!(
        app.get(&path, &alice.token).await.body["settings"]["k"],
        "share edit"
    );

    // Sharing: admin only.
    for (who, status) in [
        (&member, 403),
        (&view, 403),
        (&edit, 403),
        (&expired, 404),
        (&stranger, 404),
        (&anonymous, 401),
        (&admin, 201),
        (&share_admin, 201),
    ] {
        expect(
            &app,
            who,
            Method::POST,
            &format!("{path}/share"),
            Some(json!({"user_email": target.email, "permission": "view"})),
            status,
        )
        .await;
        expect(
            &app,
            who,
            Method::GET,
            &format!("{path}/shares"),
            None,
            if status == 201 { 200 } else { status },
        )
        .await;
    }

    // Duplicating: anyone who can read; a sharee's copy lands in their own workspace.
    for (who, status) in [
        (&expired, 404),
        (&stranger, 404),
        (&anonymous, 401),
        (&view, 201),
        (&member, 201),
    ] {
        expect(
            &app,
            who,
            Method::POST,
            &format!("{path}/duplicate"),
            Some(json!({})),
            status,
        )
        .await;
    }
    let copy = app
        .post(
            &format!("{path}/duplicate"),
            &vic.token,
            json!({"name": "Vic's copy"}),
        )
        .await;
    assert_eq!(copy.body["workspace_id"], vic.workspace_id);
    assert_eq!(copy.body["owner_id"], vic.id);
    assert_eq!(copy.body["permission"], "admin");

    // A member owns what they create, and may delete it; not other members' projects.
    let mine = app
        .project(&mia, json!({"name": "Mia's bot", "workspace_id": ws}))
        .await;
    let mine_path = format!("/api/projects/{}", mine["id"].as_str().unwrap());
    assert_eq!(
        app.get(&mine_path, &mia.token).await.body["permission"],
        "admin"
    );
    assert_eq!(app.delete(&mine_path, &mia.token).await.status, 204);

    // Deleting: admin only; the last step.
    for (who, status) in [
        (&member, 403),
        (&view, 403),
        (&edit, 403),
        (&expired, 404),
        (&stranger, 404),
        (&anonymous, 401),
    ] {
        expect(&app, who, Method::DELETE, &path, None, status).await;
        expect(
            &app,
            who,
            Method::POST,
            "/api/projects/bulk",
            Some(json!({"action": "delete", "project_ids": [id]})),
            status,
        )
        .await;
    }
    assert_eq!(
        app.get(&path, &alice.token).await.status,
        200,
        "refused deletes deleted nothing"
    );
    expect(&app, &share_admin, Method::DELETE, &path, None, 204).await;
    expect(&app, &owner, Method::GET, &path, None, 404).await;
}
on_both!(permission_matrix);

async fn revoking_shares(app: TestApp) {
    let alice = app.register("alice").await;
    let vic = app.register("vic").await;
    let p = app.project(&alice, json!({"name": "P"})).await;
    let path = format!("/api/projects/{}", p["id"].as_str().unwrap());
    app.post(
        &format!("{path}/share"),
        &alice.token,
        json!({"user_email": vic.email, "permission": "edit"}),
    )
    .await;
    // Sharing again replaces the permission.
    let again = app
        .post(
            &format!("{path}/share"),
            &alice.token,
            json!({"user_email": vic.email, "permission": "view"}),
        )
        .await;
    assert_eq!(again.body["permission"], "view");
    let shares = app.get(&format!("{path}/shares"), &alice.token).await;
    assert_eq!(shares.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get(&path, &vic.token).await.body["permission"], "view");
    assert_eq!(
        app.post(
            &format!("{path}/share"),
            &alice.token,
            json!({"user_email": alice.email, "permission": "view"})
        )
        .await
        .status,
        422
    );
    assert_eq!(
        app.delete(&format!("{path}/shares/{}", vic.id), &alice.token)
            .await
            .status,
        204
    );
    assert_eq!(app.get(&path, &vic.token).await.status, 404);
    assert_eq!(
        app.delete(&format!("{path}/shares/{}", vic.id), &alice.token)
            .await
            .status,
        404
    );
    let log = app
        .get(
            &format!(
                "/api/audit-log?workspace_id={}&action=project.",
                alice.workspace_id
            ),
            &alice.token,
        )
        .await;
    let actions = column(&log.body, "items", "action");
    assert_eq!(
        actions,
        [
            "project.unshare",
            "project.share",
            "project.share",
            "project.create"
        ]
    );
}
on_both!(revoking_shares);
