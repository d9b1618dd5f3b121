//! The OpenAPI 3 document of the API, generated from the handlers and types
//! (utoipa), and a browsable page of it rendered here (no external assets:
//! the usual console pages fetch theirs from the internet).

use axum::response::Html;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::report::html::escape;

#[derive(OpenApi)]
#[openapi(
    info(title = "hvmigrate serve", description = "The campaign's ledger, read-only: hosts, runs, report, inventory."),
    paths(
        super::health,
        super::version,
        super::metrics::metrics,
        super::api::hosts,
        super::api::host,
        super::api::outputs,
        super::api::runs,
        super::api::runs_under_way,
        super::api::report,
        super::api::inventory,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "hosts", description = "Where every host stands"),
        (name = "runs", description = "The runs, and those under way"),
        (name = "report", description = "The campaign report and the inventory"),
        (name = "management", description = "Health, version and metrics (no token unless --protect-metrics)"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token of the tokens file (`hvmigrate serve add-token`)"))
                    .build(),
            ),
        );
    }
}

/// The document, with this binary's version.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// The document as a page: each operation with its parameters and
/// responses, then the schemas.
pub async fn page() -> Html<String> {
    let doc = serde_json::to_value(openapi()).unwrap_or_default();
    let mut html = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<title>hvmigrate serve API</title><style>body{font-family:sans-serif;margin:1em;max-width:70em}",
        "code,pre{background:#f4f4f4}pre{padding:.5em;overflow-x:auto}h3{margin-bottom:.2em}",
        ".m{display:inline-block;background:#2b6cb0;color:#fff;padding:0 .4em;border-radius:3px;font-size:.85em}",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style>",
        "</head><body><h1>hvmigrate serve API</h1>",
        "<p>Every <code>/api/v1</code> request needs <code>Authorization: Bearer &lt;token&gt;</code> ",
        "(or a dashboard session). The machine-readable document: <a href=\"/api/v1/openapi.json\">openapi.json</a>.</p>"
    ));
    if let Some(paths) = doc["paths"].as_object() {
        for (path, operations) in paths {
            let Some(operations) = operations.as_object() else { continue };
            for (method, operation) in operations {
                html.push_str(&format!(
                    "<h3><span class=\"m\">{}</span> <code>{}</code></h3>",
                    escape(&method.to_uppercase()),
                    escape(path)
                ));
                for key in ["summary", "description"] {
                    if let Some(text) = operation[key].as_str() {
                        html.push_str(&format!("<p>{}</p>", escape(text)));
                    }
                }
                if let Some(params) = operation["parameters"].as_array().filter(|params| !params.is_empty()) {
                    html.push_str("<table><tr><th>parameter</th><th>in</th><th>schema</th><th>meaning</th></tr>");
                    for param in params {
                        html.push_str(&format!(
                            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                            escape(param["name"].as_str().unwrap_or("")),
                            escape(param["in"].as_str().unwrap_or("")),
                            escape(&param["schema"].to_string()),
                            escape(param["description"].as_str().unwrap_or(""))
                        ));
                    }
                    html.push_str("</table>");
                }
                if let Some(responses) = operation["responses"].as_object() {
                    html.push_str("<ul>");
                    for (status, response) in responses {
                        let schema = &response["content"]["application/json"]["schema"];
                        html.push_str(&format!(
                            "<li><b>{}</b> {} <code>{}</code></li>",
                            escape(status),
                            escape(response["description"].as_str().unwrap_or("")),
                            escape(&if schema.is_null() { String::new() } else { schema.to_string() })
                        ));
                    }
                    html.push_str("</ul>");
                }
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        html.push_str("<h2>Schemas</h2>");
        for (name, schema) in schemas {
            html.push_str(&format!(
                "<h3 id=\"{0}\">{0}</h3><pre>{1}</pre>",
                escape(name),
                escape(&serde_json::to_string_pretty(schema).unwrap_or_default())
            ));
        }
    }
    html.push_str("</body></html>\n");
    Html(html)
}
