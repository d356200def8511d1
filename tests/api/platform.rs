use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem};
use crate::on_both;

async fn health_docs_and_metrics(app: TestApp) {
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert!(
        health.headers.contains_key("x-request-id"),
        "every response carries a request id"
    );

    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(spec.status, 200);
    assert!(spec.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/logout",
        "/api/user/me",
        "/api/user/api-keys",
        "/api/user/api-keys/{id}",
        "/api/user/preferences",
        "/api/shortcuts/custom",
        "/api/shortcuts/custom/{id}",
        "/api/team/workspaces",
        "/api/team/workspaces/{id}/members",
        "/api/team/workspaces/{id}/members/{user_id}",
        "/api/audit-log",
        "/api/projects",
        "/api/projects/{id}",
        "/api/projects/bulk",
        "/api/projects/{id}/duplicate",
        "/api/projects/{id}/share",
        "/api/projects/{id}/shares",
        "/api/projects/{id}/performance",
        "/api/projects/comparison",
        "/api/agent-templates",
        "/api/projects/{id}/provider",
        "/api/chat/sessions",
        "/api/chat/sessions/active",
        "/api/chat/sessions/{id}",
        "/api/chat/sessions/{id}/join",
        "/api/chat/sessions/{id}/messages",
        "/api/chat/sessions/{id}/messages/{message_id}/rating",
        "/api/chat/templates",
        "/api/chat/templates/{id}",
        "/api/chat/voice/transcribe",
        "/api/chat/voice/synthesize",
        "/api/realtime/tickets",
        "/ws/chat/{session_id}",
        "/ws/notifications/{user_id}",
        "/api/dashboard/analytics",
        "/api/dashboard/recommendations",
        "/api/analytics/conversations",
        "/api/analytics/performance/comparison",
        "/api/analytics/topics",
        "/api/usage/metrics",
        "/api/projects/{id}/variants",
        "/api/knowledge/documents",
        "/api/knowledge/documents/{id}",
        "/api/knowledge/documents/{id}/versions",
        "/api/knowledge/documents/{id}/versions/{n}/diff",
        "/api/knowledge/search",
        "/api/knowledge/analytics",
        "/api/knowledge/upload/bulk",
        "/api/knowledge/upload/bulk/{id}",
    ] {
        assert!(
            spec.body["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
    assert!(spec.body["components"]["securitySchemes"]["bearer"].is_object());

    let docs = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(docs.status, 200);
    assert!(docs.body.as_str().unwrap().contains("/api/openapi.json"));

    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            "nova_http_requests_total{method=\"GET\",path=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains(
        "nova_http_request_duration_seconds_count{method=\"GET\",path=\"/api/openapi.json\"} 1"
    ));
    // A histogram with buckets, not a summary; and the process's own figures.
    assert!(
        text.contains("# TYPE nova_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains(
        "nova_http_request_duration_seconds_bucket{method=\"GET\",path=\"/api/openapi.json\",le=\"5\"} 1"
    ));
    for process_figure in [
        "nova_process_resident_memory_bytes ",
        "nova_process_cpu_seconds_total ",
        "nova_process_open_fds ",
    ] {
        assert!(text.contains(process_figure), "{process_figure} in {text}");
    }
}
on_both!(health_docs_and_metrics);

async fn bad_input_is_a_problem(app: TestApp) {
    let alice = app.register("alice").await;
    let malformed = app
        .raw(
            Method::POST,
            "/api/projects",
            &alice.token,
            "application/json",
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_problem(&malformed, 400);
    let wrong_type = app
        .post("/api/projects", &alice.token, json!({"name": 42}))
        .await;
    assert_problem(&wrong_type, 422);
    let unknown_enum = app
        .post(
            "/api/projects",
            &alice.token,
            json!({"name": "x", "status": "sleeping"}),
        )
        .await;
    assert_problem(&unknown_enum, 422);
    let not_json = app
        .raw(
            Method::POST,
            "/api/projects",
            &alice.token,
            "text/plain",
            b"name=x".to_vec(),
        )
        .await;
    assert_problem(&not_json, 415);
    // Just over the 1 MiB limit: the host answers 413 without reading the rest, and a body
    // much larger than that could still be on its way when it closes (a broken pipe, no answer).
    let huge = format!(
        "{{\"name\": \"x\", \"description\": \"{}\"}}",
        "a".repeat(1024 * 1024)
    );
    let too_big = app
        .raw(
            Method::POST,
            "/api/projects",
            &alice.token,
            "application/json",
            huge.into_bytes(),
        )
        .await;
    assert_problem(&too_big, 413);
    assert_problem(
        &app.get("/api/projects/not-a-uuid", &alice.token).await,
        400,
    );
    assert_problem(&app.get("/api/nowhere", &alice.token).await, 404);
    assert_problem(&app.get("/api/projects?limit=500", &alice.token).await, 400);
    assert_problem(&app.get("/api/projects?limit=abc", &alice.token).await, 400);
    // What axum answers on its own is problem+json too: a method a route does not have (with
    // `Allow`), a multipart body without a boundary, a plain GET on a socket route.
    let wrong_method = app
        .call(Method::PATCH, "/api/projects", Some(&alice.token), None)
        .await;
    assert_problem(&wrong_method, 405);
    assert!(wrong_method.headers.contains_key("allow"));
    let no_boundary = app
        .raw(
            Method::POST,
            "/api/knowledge/upload/bulk",
            &alice.token,
            "multipart/form-data",
            b"--x\r\n".to_vec(),
        )
        .await;
    assert!(no_boundary.status >= 400 && no_boundary.status < 500);
    assert_problem(&no_boundary, no_boundary.status);
    let not_a_socket = app
        .get(
            "/ws/notifications/00000000-0000-0000-0000-000000000000",
            &alice.token,
        )
        .await;
    assert!(not_a_socket.status >= 400 && not_a_socket.status < 500);
    assert_problem(&not_a_socket, not_a_socket.status);
    let bad_seq = app
        .get(
            &format!("/ws/chat/{}?last_seq=abc", uuid::Uuid::new_v4()),
            &alice.token,
        )
        .await;
    assert_problem(&bad_seq, 400);
    // None of it created anything.
    let list = app.get("/api/projects", &alice.token).await;
    assert_eq!(list.body["projects"].as_array().unwrap().len(), 0);
}
on_both!(bad_input_is_a_problem);

async fn unknown_methods_share_one_metrics_label(app: TestApp) {
    for method in ["BREW", "PROPFIND"] {
        app.call(
            Method::from_bytes(method.as_bytes()).unwrap(),
            "/api/projects",
            None,
            None,
        )
        .await;
    }
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(!text.contains("BREW") && !text.contains("PROPFIND"));
}
on_both!(unknown_methods_share_one_metrics_label);

async fn the_openapi_document_declares_errors_as_problem_json(app: TestApp) {
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await;
    let mut problems = 0;
    for (path, item) in spec.body["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                let Some(content) = response["content"].as_object() else {
                    continue;
                };
                for (media, body) in content {
                    let problem = body["schema"]["$ref"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("/Problem"));
                    if problem {
                        problems += 1;
                        assert_eq!(
                            media, "application/problem+json",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
    assert!(problems > 50, "only {problems} error responses documented");
}
on_both!(the_openapi_document_declares_errors_as_problem_json);

async fn an_error_never_grows_with_the_input_it_refuses(app: TestApp) {
    let alice = app.register("alice").await;
    let field = "f".repeat(900_000);
    let body = format!("{{\"name\": \"x\", \"{field}\": 1}}");
    let r = app
        .client
        .post(format!("{}/api/projects", app.base))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let text = r.text().await.unwrap();
    assert!(text.len() < 2_000, "a {} byte answer", text.len());
}
on_both!(
    an_error_never_grows_with_the_input_it_refuses,
    |c: &mut nova_host::Config| {
        c.max_body_bytes = 2 << 20;
    }
);

async fn every_operation_documents_the_errors_it_can_give(app: TestApp) {
    let spec = app.call(Method::GET, "/api/openapi.json", None, None).await;
    let mut checked = 0;
    for (path, item) in spec.body["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured {
                assert!(responses.get("401").is_some(), "{method} {path}: no 401");
                checked += 1;
            }
            if operation["requestBody"]["content"]
                .get("application/json")
                .is_some()
            {
                for status in ["400", "415", "422"] {
                    assert!(
                        responses.get(status).is_some(),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} secured operations");
}
on_both!(every_operation_documents_the_errors_it_can_give);

/// The limits the server enforces are in the document, so that clients and the fuzz run
/// generate within them.
async fn the_openapi_document_declares_the_enforced_limits(app: TestApp) {
    let spec = app
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .body;
    let schema =
        |name: &str, field: &str| spec["components"]["schemas"][name]["properties"][field].clone();
    let param = |path: &str, name: &str| {
        spec["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or_default()
    };
    assert_eq!(schema("NewProject", "name")["maxLength"], 200);
    assert_eq!(schema("ProjectUpdate", "name")["minLength"], 1);
    assert_eq!(schema("BulkRequest", "project_ids")["maxItems"], 500);
    assert_eq!(schema("BulkRequest", "project_ids")["minItems"], 1);
    assert_eq!(schema("NewMessage", "content")["maxLength"], 20_000);
    assert_eq!(schema("NewChatTemplate", "content")["maxLength"], 5_000);
    assert_eq!(schema("SpeechRequest", "text")["maxLength"], 5_000);
    assert_eq!(param("/api/knowledge/search", "q")["maxLength"], 500);
    assert_eq!(param("/api/projects", "limit")["maximum"], 200);
    assert_eq!(param("/api/projects", "limit")["minimum"], 1);
    assert_eq!(
        param("/api/chat/sessions/{id}/messages", "limit")["maximum"],
        200
    );
    // Roles, statuses and permissions are documented by the values the API sends.
    assert_eq!(
        spec["components"]["schemas"]["Role"]["enum"],
        json!(["member", "admin", "owner"])
    );
}
on_both!(the_openapi_document_declares_the_enforced_limits);
