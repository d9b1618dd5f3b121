//! The Jira emulator answers as Jira does: shapes, status codes, error bodies,
//! paging, auth, v2 wiki vs v3 ADF, and faults injected through it.

use hvmigrate_lab::{Fault, Lab, LabOptions, Service};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

async fn lab() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Lab::start(LabOptions::default()).await.expect("lab starts")
}

fn request(lab: &Lab, method: Method, path: &str) -> RequestBuilder {
    let secrets = lab.secrets();
    Client::new()
        .request(method, format!("{}{path}", lab.urls().jira))
        .basic_auth(&secrets.jira_username, Some(&secrets.jira_api_token))
}

async fn json_of(builder: RequestBuilder) -> (StatusCode, Value) {
    let response = builder.send().await.expect("a reply");
    let status = response.status();
    let text = response.text().await.expect("a body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON") })
}

fn first_key(lab: &Lab) -> String {
    lab.world().lock().jira.issues[0].key.clone()
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]})
}

#[tokio::test]
async fn server_info_needs_no_auth_and_carries_version_numbers() {
    let lab = lab().await;
    let response = Client::new().get(format!("{}/rest/api/2/serverInfo", lab.urls().jira)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["versionNumbers"], json!([9, 12, 2]));
    assert_eq!(info["deploymentType"], "Server");
    assert_eq!(info["baseUrl"], lab.urls().jira);
}

#[tokio::test]
async fn bad_or_missing_credentials_get_401_with_an_error_collection() {
    let lab = lab().await;
    let url = format!("{}/rest/api/2/myself", lab.urls().jira);
    let anonymous = Client::new().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert!(body["errorMessages"][0].as_str().unwrap().contains("not authenticated"));
    assert_eq!(body["errors"], json!({}));

    let wrong = Client::new().get(&url).basic_auth(&lab.secrets().jira_username, Some("wrong")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["x-seraph-loginreason"], "AUTHENTICATED_FAILED");
    // Bad credentials fail even where anonymous access is allowed.
    let info = Client::new()
        .get(format!("{}/rest/api/2/serverInfo", lab.urls().jira))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED);

    let bearer = Client::new().get(&url).bearer_auth(&lab.secrets().jira_personal_access_token).send().await.unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let (status, me) = json_of(request(&lab, Method::GET, "/rest/api/2/myself")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], lab.secrets().jira_username);
    let (_, me3) = json_of(request(&lab, Method::GET, "/rest/api/3/myself")).await;
    assert!(me3["accountId"].is_string(), "v3 names users by accountId");
}

#[tokio::test]
async fn create_then_get_an_issue_with_its_status_object() {
    let lab = lab().await;
    let fields = json!({"fields": {"project": {"key": "MH"}, "summary": "hv999.lab.example.org",
                                   "issuetype": {"name": "HyperVisor"}, "description": "wiki *text*"}});
    let (status, created) = json_of(request(&lab, Method::POST, "/rest/api/2/issue").json(&fields)).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("MH-"));
    assert!(created["id"].is_string(), "ids are numeric strings");
    assert!(created["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/rest/api/2/issue/{}", created["id"].as_str().unwrap())));

    let (status, issue) = json_of(request(&lab, Method::GET, &format!("/rest/api/2/issue/{key}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(issue["fields"]["summary"], "hv999.lab.example.org");
    assert_eq!(issue["fields"]["description"], "wiki *text*");
    let state = &issue["fields"]["status"];
    assert_eq!(state["name"], "To Do");
    assert!(state["id"].is_string());
    assert_eq!(state["statusCategory"]["key"], "new");
    assert!(state["statusCategory"]["id"].is_i64(), "statusCategory.id is an integer");

    // v3 shows the wiki description as ADF; `fields` narrows the answer.
    let (_, issue3) =
        json_of(request(&lab, Method::GET, &format!("/rest/api/3/issue/{key}?fields=status,description"))).await;
    assert_eq!(issue3["fields"]["description"]["type"], "doc");
    assert!(issue3["fields"].get("summary").is_none());

    let (status, missing) = json_of(request(&lab, Method::GET, "/rest/api/2/issue/MH-99999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["errorMessages"][0], "Issue does not exist or you do not have permission to see it.");
}

#[tokio::test]
async fn create_issue_validation_follows_the_flavour() {
    let lab = lab().await;
    let (status, body) = json_of(request(&lab, Method::POST, "/rest/api/2/issue").json(&json!({"fields": {}}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["summary"].is_string());
    assert!(body["errors"]["project"].is_string());

    let wiki = json!({"fields": {"project": {"key": "MH"}, "summary": "x", "issuetype": {"name": "HyperVisor"},
                                 "description": "plain"}});
    let (status, body) = json_of(request(&lab, Method::POST, "/rest/api/3/issue").json(&wiki)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["description"].as_str().unwrap().contains("Atlassian Document"));

    let with_adf = json!({"fields": {"project": {"key": "MH"}, "summary": "x", "issuetype": {"id": "10100"},
                                     "description": adf("rich")}});
    let (status, _) = json_of(request(&lab, Method::POST, "/rest/api/3/issue").json(&with_adf)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = json_of(request(&lab, Method::POST, "/rest/api/2/issue").json(&with_adf)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["description"], "Operation value must be a string");
}

#[tokio::test]
async fn comments_v2_take_wiki_strings_and_v3_take_adf() {
    let lab = lab().await;
    let key = first_key(&lab);
    let path2 = format!("/rest/api/2/issue/{key}/comment");
    let path3 = format!("/rest/api/3/issue/{key}/comment");

    let (status, comment) = json_of(request(&lab, Method::POST, &path2).json(&json!({"body": "drained *ok*"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(comment["body"], "drained *ok*");
    assert!(comment["id"].is_string());
    assert_eq!(comment["author"]["name"], lab.secrets().jira_username);
    assert!(comment["created"].as_str().unwrap().ends_with("+0000"));

    let (status, body) = json_of(request(&lab, Method::POST, &path2).json(&json!({"body": adf("x")}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "v2 refuses an ADF body");
    assert!(body["errorMessages"][0].as_str().unwrap().contains("deserialize"));

    let (status, body) = json_of(request(&lab, Method::POST, &path3).json(&json!({"body": "plain"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "v3 refuses a string body");
    assert_eq!(body["errors"]["comment"], "Comment body is not valid!");

    let (status, comment3) = json_of(request(&lab, Method::POST, &path3).json(&json!({"body": adf("from v3")}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(comment3["body"], adf("from v3"));
    assert!(comment3["author"]["accountId"].is_string());

    let (_, list2) = json_of(request(&lab, Method::GET, &path2)).await;
    assert_eq!(list2["total"], 2);
    assert_eq!(list2["startAt"], 0);
    assert_eq!(list2["comments"][1]["body"], "from v3", "v2 shows ADF as text");
    let (_, list3) = json_of(request(&lab, Method::GET, &format!("{path3}?startAt=1&maxResults=1"))).await;
    assert_eq!(list3["comments"].as_array().unwrap().len(), 1);
    assert_eq!(list3["maxResults"], 1);
    assert_eq!(list3["comments"][0]["body"]["type"], "doc");
}

#[tokio::test]
async fn internal_comments_through_the_service_desk_property() {
    let lab = lab().await;
    let key = first_key(&lab);
    let body =
        json!({"body": "operator only", "properties": [{"key": "sd.public.comment", "value": {"internal": true}}]});
    let (status, comment) =
        json_of(request(&lab, Method::POST, &format!("/rest/api/2/issue/{key}/comment")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(comment["jsdPublic"], false);
    let (_, list) =
        json_of(request(&lab, Method::GET, &format!("/rest/api/2/issue/{key}/comment?expand=properties"))).await;
    assert_eq!(list["comments"][0]["properties"][0]["key"], "sd.public.comment");
    assert!(lab.world().lock().jira_issue(&key).unwrap().comments[0].internal);
}

#[tokio::test]
async fn transitions_follow_the_workflow() {
    let lab = lab().await;
    let key = first_key(&lab);
    let path = format!("/rest/api/2/issue/{key}/transitions");
    let (status, list) = json_of(request(&lab, Method::GET, &path)).await;
    assert_eq!(status, StatusCode::OK);
    let transitions = list["transitions"].as_array().unwrap();
    let names: Vec<&str> = transitions.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Draining", "Working On Pre Bios"]);
    let draining = &transitions[0];
    assert!(draining["id"].is_string());
    assert_eq!(draining["to"]["name"], "Draining");
    assert_eq!(draining["to"]["statusCategory"]["key"], "indeterminate");

    // Unavailable from here: Done.
    let (_, all) = json_of(request(&lab, Method::GET, &path)).await;
    let draining_id = all["transitions"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = json_of(request(&lab, Method::POST, &path).json(&json!({"transition": {"id": "9999"}}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errorMessages"][0].as_str().unwrap().contains("9999"));

    // The id as a number (what Python's jira sends), with a comment on the way.
    let number: u64 = draining_id.parse().unwrap();
    let change = json!({"transition": {"id": number}, "fields": {},
                        "update": {"comment": [{"add": {"body": "draining now"}}]}});
    let response = request(&lab, Method::POST, &path).json(&change).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.text().await.unwrap().is_empty());
    {
        let world = lab.world().lock();
        let issue = world.jira_issue(&key).unwrap();
        assert_eq!(issue.status, "Draining");
        assert_eq!(issue.comments.last().unwrap().body, json!("draining now"));
    }
    let (_, after) = json_of(request(&lab, Method::GET, &path)).await;
    let drained = after["transitions"].as_array().unwrap().iter().find(|t| t["name"] == "Drained").unwrap().clone();
    let response =
        request(&lab, Method::POST, &path).json(&json!({"transition": {"id": drained["id"]}})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "the id as a string");
    // The same target status keeps the same transition id from anywhere.
    let (_, from_drained) = json_of(request(&lab, Method::GET, &path)).await;
    let pre_bios = |list: &Value| {
        list["transitions"].as_array().unwrap().iter().find(|t| t["name"] == "Working On Pre Bios").unwrap()["id"]
            .clone()
    };
    assert_eq!(pre_bios(&from_drained), pre_bios(&all));
}

#[tokio::test]
async fn search_v2_pages_with_start_at_and_total() {
    let lab = lab().await;
    let (status, page) = json_of(request(
        &lab,
        Method::GET,
        "/rest/api/2/search?jql=project%20%3D%20MH%20ORDER%20BY%20key&maxResults=5&startAt=10",
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 12);
    assert_eq!(page["startAt"], 10);
    assert_eq!(page["maxResults"], 5);
    assert_eq!(page["issues"].as_array().unwrap().len(), 2);
    assert!(page["issues"][0]["fields"]["status"]["name"].is_string());

    let summary = lab.world().lock().jira.issues[3].summary.clone();
    let jql = format!("project = MH AND summary = \"{summary}\"");
    let (_, exact) = json_of(request(&lab, Method::POST, "/rest/api/2/search").json(&json!({"jql": jql}))).await;
    assert_eq!(exact["total"], 1);
    assert_eq!(exact["issues"][0]["fields"]["summary"], summary.as_str());
    let short = summary.split('.').next().unwrap();
    let (_, fuzzy) = json_of(
        request(&lab, Method::POST, "/rest/api/2/search").json(&json!({"jql": format!("summary ~ \"{short}\"")})),
    )
    .await;
    assert!(fuzzy["total"].as_u64().unwrap() >= 1);
    let (_, by_key) =
        json_of(request(&lab, Method::POST, "/rest/api/2/search").json(&json!({"jql": "key = MH-101"}))).await;
    assert_eq!(by_key["issues"][0]["key"], "MH-101");

    for (jql, fragment) in [
        ("assignee = x", "does not exist"),
        ("project = NOPE", "'NOPE' does not exist for the field 'project'"),
        ("key = MH-99999", "does not exist for field 'key'"),
    ] {
        let (status, body) =
            json_of(request(&lab, Method::POST, "/rest/api/2/search").json(&json!({"jql": jql}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{jql}");
        assert!(body["errorMessages"][0].as_str().unwrap().contains(fragment), "{jql}: {body}");
    }
}

#[tokio::test]
async fn search_jql_pages_with_tokens_and_the_old_v3_search_is_gone() {
    let lab = lab().await;
    let (status, gone) = json_of(request(&lab, Method::GET, "/rest/api/3/search?jql=project%3DMH")).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(gone["errorMessages"][0].as_str().unwrap().contains("/rest/api/3/search/jql"));

    let (status, unbounded) = json_of(request(&lab, Method::GET, "/rest/api/3/search/jql?jql=")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(unbounded["errorMessages"][0].as_str().unwrap().contains("Unbounded"));

    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"jql": "project = MH", "maxResults": 5, "fields": ["summary"]});
        if let Some(token) = &token {
            body["nextPageToken"] = json!(token);
        }
        let (status, page) = json_of(request(&lab, Method::POST, "/rest/api/3/search/jql").json(&body)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.get("total").is_none() && page.get("startAt").is_none());
        for issue in page["issues"].as_array().unwrap() {
            assert!(issue["fields"]["summary"].is_string());
            keys.push(issue["key"].as_str().unwrap().to_owned());
        }
        if page["isLast"] == true {
            assert!(page.get("nextPageToken").is_none(), "absent, not null, on the last page");
            break;
        }
        token = Some(page["nextPageToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(keys.len(), 12);
    // Without `fields` only ids come back.
    let (_, ids) = json_of(request(&lab, Method::GET, "/rest/api/2/search/jql?jql=project%3DMH")).await;
    assert_eq!(ids["issues"][0]["fields"], json!({}));
}

#[tokio::test]
async fn injected_faults_answer_in_jira_shapes() {
    let lab = lab().await;
    let key = first_key(&lab);
    lab.faults().push(Service::Jira, Fault::Status(503));
    let (status, body) = json_of(request(&lab, Method::GET, "/rest/api/2/myself")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["errorMessages"].is_array());

    lab.faults().push(Service::Jira, Fault::RateLimited { retry_after_secs: 1 });
    let response = request(&lab, Method::GET, "/rest/api/2/myself").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");

    // The reply is lost, but the comment is committed: a retry must look first.
    lab.faults().push(Service::Jira, Fault::DropAfterCommit);
    let reply = request(&lab, Method::POST, &format!("/rest/api/2/issue/{key}/comment"))
        .json(&json!({"body": "committed"}))
        .send()
        .await;
    let lost = match reply {
        Err(_) => true,
        Ok(response) => response.text().await.is_err(),
    };
    assert!(lost, "the client never sees the reply");
    let world = lab.world().lock();
    assert_eq!(world.jira_issue(&key).unwrap().comments.last().unwrap().body, json!("committed"));
    drop(world);
    assert!(lab.requests().all().iter().any(|r| r.dropped && r.path.ends_with("/comment")));
}
