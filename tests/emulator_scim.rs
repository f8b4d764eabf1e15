//! The emulator's SCIM endpoint, driven with plain HTTP requests written from AWS's SCIM
//! developer guide. Each rule of AWS's subset has a test that fails when the rule breaks.

use aws_replicator::emulator::{Emulator, EmulatorConfig, Family, Fault, RunningEmulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Scim {
    running: RunningEmulator,
    http: reqwest::Client,
}

impl Scim {
    async fn start() -> Self {
        // Set-up creates hundreds of groups at once: no throttling here (see the sso-admin tests
        // for the token bucket).
        let config = EmulatorConfig {
            rate_limit: None,
            ..EmulatorConfig::default()
        };
        let running = Emulator::new(config).serve(0).await.unwrap();
        Self {
            running,
            http: reqwest::Client::new(),
        }
    }

    fn emulator(&self) -> &Emulator {
        &self.running.emulator
    }

    async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{}", self.running.scim_endpoint(), path);
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, body)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with("emulator-token", method, path, body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn create_group(
        &self,
        name: &str,
        external_id: Option<&str>,
        members: &[String],
    ) -> (StatusCode, Value) {
        let mut body = json!({"displayName": name, "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()});
        if let Some(e) = external_id {
            body["externalId"] = json!(e);
        }
        self.call(Method::POST, "Groups", Some(body)).await
    }

    async fn patch(&self, group: &str, ops: Value) -> (StatusCode, Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        self.call(Method::PATCH, &format!("Groups/{group}"), Some(body))
            .await
    }

    async fn members(&self, group: &str) -> Vec<String> {
        let (status, body) = self
            .get(&format!("Users?filter=groups.value%20eq%20%22{group}%22"))
            .await;
        assert_eq!(status, StatusCode::OK);
        body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn users(e: &Emulator, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| e.add_user(&format!("user{i:03}@example.com")))
        .collect()
}

fn assert_aws_error(body: &Value, status: &str) {
    assert_eq!(body["status"], json!(status), "{body}");
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(
        body["schema"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert!(body.get("scimType").is_none(), "{body}");
    assert!(
        body["exceptionRequestId"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "{body}"
    );
    assert!(body["detail"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn a_bad_token_or_tenant_is_401() {
    let scim = Scim::start().await;
    let (status, body) = scim.call_with("wrong", Method::GET, "Groups", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_aws_error(&body, "401");
    let url = format!("{}/other-tenant/scim/v2/Groups", scim.running.endpoint());
    let response = scim
        .http
        .get(url)
        .bearer_auth("emulator-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = scim
        .http
        .get(format!("{}Groups", scim.running.scim_endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_are_found_by_user_name_ignoring_case_and_by_external_id() {
    let scim = Scim::start().await;
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice@Acme.example",
        "externalId": "701984", "name": {"familyName": "Adams", "givenName": "Alice"}, "displayName": "Alice Adams",
        "emails": [{"value": "alice@acme.example", "type": "work", "primary": true}]});
    let (status, created) = scim.call(Method::POST, "Users", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 47);
    let (status, dup) = scim.call(Method::POST, "Users", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_aws_error(&dup, "409");
    let (status, missing) = scim
        .call(Method::POST, "Users", Some(json!({"userName": "x"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aws_error(&missing, "400");

    let (_, found) = scim
        .get("Users?filter=userName%20eq%20%22alice%40acme.example%22")
        .await;
    assert_eq!(found["Resources"][0]["id"], json!(id));
    let (_, found) = scim
        .get("Users?filter=externalId%20eq%20%22701984%22")
        .await;
    assert_eq!(found["totalResults"], json!(1));
    let (status, none) = scim.get("Users?filter=userName%20eq%20%22nobody%22").await;
    assert_eq!(
        (
            status,
            none["totalResults"].clone(),
            none["Resources"].clone()
        ),
        (StatusCode::OK, json!(0), json!([]))
    );
    let (status, user) = scim.get(&format!("Users/{id}")).await;
    assert_eq!(
        (status, user["userName"].clone()),
        (StatusCode::OK, json!("Alice@Acme.example"))
    );
    let (status, body) = scim.get("Users/90670000000-nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_aws_error(&body, "404");
}

#[tokio::test]
async fn groups_are_created_with_at_most_100_members_and_unique_names_and_external_ids() {
    let scim = Scim::start().await;
    let ids = users(scim.emulator(), 101);
    let (status, created) = scim.create_group("mst-a", Some("ext-a"), &ids[..100]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created.get("members").is_none());
    assert_eq!(
        scim.members(created["id"].as_str().unwrap()).await.len(),
        100
    );

    let (status, body) = scim.create_group("mst-b", None, &ids).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "101 inline members");
    assert_aws_error(&body, "400");
    let (status, body) = scim.create_group("MST-A", None, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "duplicate displayName");
    assert_aws_error(&body, "409");
    let (status, _) = scim.create_group("mst-c", Some("ext-a"), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "duplicate externalId");
    let (status, _) = scim
        .create_group("mst-d", None, &["90670000000-unknown".to_owned()])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown member");
    assert_eq!(
        scim.emulator().dump().groups.len(),
        1,
        "no failed create left anything behind"
    );
}

#[tokio::test]
async fn groups_are_read_without_members_and_filtered_as_aws_allows() {
    let scim = Scim::start().await;
    let ids = users(scim.emulator(), 2);
    let (_, a) = scim.create_group("mst-a", Some("ext-a"), &ids[..1]).await;
    let (_, _b) = scim.create_group("mst-b", None, &[]).await;
    let a = a["id"].as_str().unwrap();
    let (_, got) = scim.get(&format!("Groups/{a}")).await;
    assert_eq!(got["members"], json!([]));
    let (_, all) = scim.get("Groups").await;
    assert!(
        all["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["members"] == json!([]))
    );

    let q = |f: &str| {
        format!(
            "Groups?filter={}",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    let (_, r) = scim.get(&q(r#"displayName eq "MST-A""#)).await;
    assert_eq!(r["totalResults"], json!(1));
    let (_, r) = scim.get(&q(r#"externalId eq "ext-a""#)).await;
    assert_eq!(r["Resources"][0]["id"], json!(a));
    let (_, r) = scim
        .get(&q(&format!(r#"members.value eq "{}""#, ids[0])))
        .await;
    assert_eq!(r["totalResults"], json!(1));
    let (_, r) = scim
        .get(&q(&format!(r#"id eq "{a}" and members eq "{}""#, ids[0])))
        .await;
    assert_eq!(r["totalResults"], json!(1));
    let (status, r) = scim
        .get(&q(&format!(r#"members eq "{}" and id eq "{a}""#, ids[1])))
        .await;
    assert_eq!(
        (status, r["totalResults"].clone()),
        (StatusCode::OK, json!(0)),
        "a non-member: 200 with none"
    );
    let (status, _) = scim
        .get(&q(&format!(
            r#"id eq "{a}" and members eq "90670000000-gone""#
        )))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown user: 404");
    let (status, _) = scim.get(&q(r#"members.value eq "90670000000-gone""#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for unsupported in [
        r#"displayName co "mst""#,
        r#"displayName sw "mst""#,
        r#"displayName eq "a" or displayName eq "b""#,
        r#"description eq "x""#,
        "displayName pr",
    ] {
        let (status, body) = scim.get(&q(unsupported)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{unsupported}");
        assert_aws_error(&body, "400");
    }
}

#[tokio::test]
async fn patch_adds_and_removes_in_the_documented_form_only() {
    let scim = Scim::start().await;
    let ids = users(scim.emulator(), 101);
    let (_, g) = scim.create_group("mst-a", None, &[]).await;
    let g = g["id"].as_str().unwrap().to_owned();
    let values = |ids: &[String]| ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>();

    let (status, body) = scim
        .patch(
            &g,
            json!([{"op": "add", "path": "members", "value": values(&ids[..100])}]),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, Value::Null),
        "204 with no body"
    );
    assert_eq!(scim.members(&g).await.len(), 100);
    let (status, _) = scim
        .patch(
            &g,
            json!([{"op": "add", "path": "members", "value": values(&ids)}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "101 changes");
    let (status, _) = scim
        .patch(
            &g,
            json!([{"op": "add", "path": "members", "value": values(&ids[..60])},
                          {"op": "remove", "path": "members", "value": values(&ids[60..101])}]),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "101 changes over two operations"
    );
    let (status, _) = scim
        .patch(
            &g,
            json!([{"op": "remove", "path": "members", "value": values(&ids[..2])}]),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(scim.members(&g).await.len(), 98);

    for refused in [
        json!([{"op": "replace", "path": "members", "value": values(&ids[..1])}]),
        json!([{"op": "remove", "path": "members"}]),
        json!([{"op": "remove", "path": "members", "value": []}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[5])}]),
        json!([{"op": "add", "path": "description", "value": "x"}]),
        json!([]),
    ] {
        let (status, body) = scim.patch(&g, refused.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_aws_error(&body, "400");
    }
    assert_eq!(
        scim.members(&g).await.len(),
        98,
        "refused requests changed nothing"
    );
    let no_schema =
        json!({"Operations": [{"op": "add", "path": "members", "value": values(&ids[..1])}]});
    let (status, _) = scim
        .call(Method::PATCH, &format!("Groups/{g}"), Some(no_schema))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = scim
        .patch(
            &g,
            json!([{"op": "replace", "value": {"id": g, "displayName": "mst-renamed"}}]),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, got) = scim.get(&format!("Groups/{g}")).await;
    assert_eq!(got["displayName"], json!("mst-renamed"));
    let (status, _) = scim
        .patch(
            "90670000000-gone",
            json!([{"op": "add", "path": "members", "value": values(&ids[..1])}]),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_then_404_and_put_is_refused() {
    let scim = Scim::start().await;
    let (_, g) = scim.create_group("mst-a", None, &[]).await;
    let g = g["id"].as_str().unwrap();
    let (status, _) = scim
        .call(
            Method::PUT,
            &format!("Groups/{g}"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = scim
        .call(Method::DELETE, &format!("Groups/{g}"), None)
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, _) = scim
        .call(Method::DELETE, &format!("Groups/{g}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = scim.get(&format!("Groups/{g}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cursor_paging_follows_next_cursor_and_refuses_a_changed_filter() {
    let scim = Scim::start().await;
    for i in 0..250 {
        assert_eq!(
            scim.create_group(&format!("g{i:03}"), None, &[]).await.0,
            StatusCode::CREATED
        );
    }
    let (_, first) = scim.get("Groups?cursor&count=100").await;
    assert_eq!(first["itemsPerPage"], json!(100));
    assert!(first.get("totalResults").is_none() && first.get("startIndex").is_none());
    let mut seen = first["Resources"].as_array().unwrap().len();
    let mut cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let mut pages = 1;
    loop {
        let (status, page) = scim.get(&format!("Groups?cursor={cursor}&count=100")).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        seen += page["Resources"].as_array().unwrap().len();
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((pages, seen), (3, 250));

    let (status, _) = scim
        .get(&format!(
            "Groups?cursor={}&count=100&filter=displayName%20eq%20%22g001%22",
            first["nextCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "filter changed between pages"
    );
    let (status, _) = scim.get("Groups?cursor=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = scim.get("Groups?cursor&count=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = scim.get("Users?startIndex=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, capped) = scim.get("Groups").await;
    assert_eq!(
        capped["Resources"].as_array().unwrap().len(),
        100,
        "without a cursor: one page of at most 100"
    );
}

#[tokio::test]
async fn requests_are_logged_and_counted_and_state_round_trips() {
    let scim = Scim::start().await;
    let ids = users(scim.emulator(), 1);
    let (_, g) = scim.create_group("mst-a", None, &ids).await;
    scim.get("Groups").await;
    scim.get(&format!("Groups/{}", g["id"].as_str().unwrap()))
        .await;
    let counts = scim.emulator().counts();
    assert_eq!(counts["scim POST /Groups"], 1);
    assert_eq!(counts["scim GET /Groups"], 1);
    assert_eq!(counts["scim GET /Groups/{id}"], 1);
    assert_eq!(counts["scim"], 3);

    let http = reqwest::Client::new();
    let log: Value = http
        .get(format!("{}/_emulator/requests", scim.running.endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["counts"]["scim"], json!(3));
    assert_eq!(log["requests"][0]["status"], json!(201));

    let state: Value = http
        .get(format!("{}/_emulator/state", scim.running.endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["groups"][0]["members"], json!(ids));
    let other = Scim::start().await;
    let put = http
        .put(format!("{}/_emulator/state", other.running.endpoint()))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    assert_eq!(other.emulator().dump(), scim.emulator().dump());
}

#[tokio::test]
async fn faults_answer_429_with_and_without_retry_after_and_5xx() {
    let scim = Scim::start().await;
    scim.emulator().inject(Fault {
        family: Family::Scim,
        endpoint: "GET /Groups".into(),
        status: 429,
        retry_after: Some(2),
        latency_ms: 0,
        drop_connection: false,
        times: 1,
        ..Fault::default()
    });
    scim.emulator().inject(Fault {
        family: Family::Scim,
        endpoint: "GET /Groups".into(),
        status: 429,
        retry_after: None,
        latency_ms: 0,
        drop_connection: false,
        times: 1,
        ..Fault::default()
    });
    scim.emulator().inject(Fault {
        family: Family::Scim,
        endpoint: "".into(),
        status: 503,
        retry_after: None,
        latency_ms: 50,
        drop_connection: false,
        times: 1,
        ..Fault::default()
    });
    let url = format!("{}Groups", scim.running.scim_endpoint());
    let r = scim
        .http
        .get(&url)
        .bearer_auth("emulator-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned())
        ),
        (StatusCode::TOO_MANY_REQUESTS, Some("2".into()))
    );
    let r = scim
        .http
        .get(&url)
        .bearer_auth("emulator-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none());
    let started = std::time::Instant::now();
    let r = scim
        .http
        .get(&url)
        .bearer_auth("emulator-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed().as_millis() >= 50);
    let (status, _) = scim.get("Groups").await;
    assert_eq!(status, StatusCode::OK, "faults are used up");
    let statuses: Vec<u16> = scim
        .emulator()
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 429, 503, 200]);
}

/// The state of 33,000 projects (three groups each, 99,000 groups over 20,000 users, three
/// members a group) as `PUT /_emulator/state` takes it.
fn estate(projects: usize) -> aws_replicator::emulator::store::State {
    use aws_replicator::emulator::store::{Group, State, User};
    let id = |n: usize| format!("9067d0a3c1-{n:08x}-0000-4000-8000-{n:012x}");
    let users: Vec<User> = (0..20_000)
        .map(|u| User {
            id: id(u + 1),
            user_name: format!("user{u}@example.com"),
            external_id: None,
            display_name: format!("user{u}"),
            given_name: "user".into(),
            family_name: format!("{u}"),
            email: None,
        })
        .collect();
    let mut groups = Vec::with_capacity(projects * 3);
    for p in 0..projects {
        for (r, role) in ["admin", "user", "reader"].iter().enumerate() {
            let n = 100_000 + p * 3 + r;
            groups.push(Group {
                id: id(n),
                display_name: format!("mst-ws{}.p{p}.{role}", p / 10),
                external_id: Some(format!("mst:v1:aws.x:ws{}:p{p}:{role}", p / 10)),
                members: (0..3)
                    .map(|m| id((p * 7 + r * 13 + m * 101) % 20_000 + 1))
                    .collect(),
            });
        }
    }
    State {
        users,
        groups,
        ..State::default()
    }
}

/// A 33,000-project state goes in through `PUT /_emulator/state` (tens of MB, past axum's
/// default 2 MB), a group listing page renders its 100 groups and no more however large the
/// store, a user's groups come from the membership index, and the next id is past every
/// loaded one.
#[tokio::test]
async fn a_33000_project_state_loads_and_a_page_costs_only_its_page() {
    let scim = Scim::start().await;
    let state = estate(33_000);
    let body = serde_json::to_vec(&state).unwrap();
    assert!(body.len() > 2 << 20, "{} bytes", body.len());
    let response = reqwest::Client::new()
        .put(format!("{}/_emulator/state", scim.running.endpoint()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(scim.emulator().dump().groups.len(), 99_000);

    let before = scim.emulator().rendered();
    let (status, first) = scim.get("Groups?cursor&count=100").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["itemsPerPage"], json!(100));
    let (_, second) = scim
        .get(&format!(
            "Groups?cursor={}&count=100",
            first["nextCursor"].as_str().unwrap()
        ))
        .await;
    assert_ne!(first["Resources"][0]["id"], second["Resources"][0]["id"]);
    let (_, capped) = scim.get("Groups").await;
    assert_eq!(capped["totalResults"], json!(99_000));
    assert_eq!(
        scim.emulator().rendered() - before,
        300,
        "three pages of 100 rendered 300 groups, not the store's 99,000"
    );

    // user0 (id 1) is in the groups whose members formula gives 0.
    let expected = state
        .groups
        .iter()
        .filter(|g| g.members.contains(&state.users[0].id))
        .count();
    let (_, of_user) = scim
        .get(&format!(
            "Groups?filter=members.value%20eq%20%22{}%22",
            state.users[0].id
        ))
        .await;
    assert_eq!(of_user["totalResults"], json!(expected));

    let (status, created) = scim.create_group("mst-new", None, &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    let new_id = created["id"].as_str().unwrap();
    let newest = state.groups.iter().map(|g| g.id.as_str()).max().unwrap();
    assert!(new_id > newest, "{new_id} after {newest}");
}

/// AWS holds at most 100,000 groups per identity store (not raisable): the 100,001st create is
/// refused in AWS's error shape, and one deleted makes room again.
#[tokio::test]
async fn an_identity_store_holds_at_most_100000_groups() {
    let scim = Scim::start().await;
    let mut state = estate(0);
    state.groups = (0..100_000)
        .map(|n| aws_replicator::emulator::store::Group {
            id: format!("9067d0a3c1-{n:08x}-0000-4000-8000-{n:012x}"),
            display_name: format!("g{n}"),
            external_id: None,
            members: Default::default(),
        })
        .collect();
    scim.emulator().load(state);
    let (status, body) = scim.create_group("one-too-many", None, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_aws_error(&body, "400");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("exceed the maximum"),
        "{body}"
    );
    let gone = "9067d0a3c1-00000000-0000-4000-8000-000000000000";
    let (status, _) = scim
        .call(Method::DELETE, &format!("Groups/{gone}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        scim.create_group("one-too-many", None, &[]).await.0,
        StatusCode::CREATED
    );
}
