//! Who may read: bearer tokens whose SHA-256 the tokens file holds (mode
//! 0600, one `name role sha256` a line), compared in constant time, and the
//! dashboard's sessions, opened by a login page with a token and kept in an
//! HttpOnly, SameSite=Strict cookie. The file is read again when it changes,
//! so a removed token (and its sessions) stops working at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, Shared};
use crate::error::{Error, InputProblem, Result};

/// What a token may do. The server only reads; `operate` also sees the raw
/// output of the commands the runs ran on the hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Operate,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
        }
    }
}

/// Who made a request (put in the request's extensions).
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    role: Role,
    hash: [u8; 32],
}

const SESSION_COOKIE: &str = "hvmigrate_session";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
const HEADER: &str = "# hvmigrate serve tokens: <name> <read|operate> <sha256 of the token, hex>. Keep mode 0600.\n";

/// The file's modification time and size when read, and its entries.
type Loaded = (Option<(SystemTime, u64)>, Vec<Entry>);

/// The tokens file, as last read.
pub struct Tokens {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._@-".contains(&byte))
}

/// Reads and checks the file: the user's, mode 0600, every line well formed.
fn read_entries(path: &Path) -> Result<Loaded> {
    let meta = std::fs::metadata(path).map_err(|err| Error::io(path, err))?;
    crate::fs_security::check_secret_file(path)?;
    let text = String::from_utf8(crate::config::input::read_capped(path, "the tokens file").map_err(Error::input)?)
        .map_err(|_| Error::input(InputProblem::new(path, "the tokens file is not valid UTF-8")))?;
    let mut entries: Vec<Entry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: &str| Error::input(InputProblem::at_line(path, index + 1, message));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, role, hash] = fields[..] else {
            return Err(bad("expected '<name> <read|operate> <sha256 hex>'"));
        };
        if !valid_name(name) {
            return Err(bad("a name is 1 to 64 letters, digits or . _ @ -"));
        }
        let role = Role::parse(role).ok_or_else(|| bad("the role is read or operate"))?;
        let hash = parse_hex(hash).ok_or_else(|| bad("the hash is 64 hexadecimal digits (SHA-256)"))?;
        if entries.iter().any(|entry| entry.name == name) {
            return Err(bad("this name is given twice"));
        }
        entries.push(Entry { name: name.to_owned(), role, hash });
    }
    Ok((meta.modified().ok().map(|at| (at, meta.len())), entries))
}

impl Tokens {
    /// Loads the tokens file; refused (naming it) unless private and well formed.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::input(InputProblem::new(
                path,
                "no tokens file here: make one with `hvmigrate serve add-token --tokens-file <file> --name <name> --role read`",
            )));
        }
        let loaded = read_entries(path)?;
        if loaded.1.is_empty() {
            tracing::warn!("{}: no token yet: nobody can read the API or the dashboard", path.display());
        }
        Ok(Tokens { path: path.to_owned(), loaded: RwLock::new(loaded) })
    }

    /// Reads the file again if it changed. A file that became unsafe or
    /// malformed lets nobody in until it is fixed.
    fn refresh(&self) {
        let stamp = std::fs::metadata(&self.path).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len())));
        if self.loaded.read().unwrap_or_else(|poison| poison.into_inner()).0 == stamp && stamp.is_some() {
            return;
        }
        let fresh = match read_entries(&self.path) {
            Ok(fresh) => fresh,
            Err(err) => {
                tracing::error!("the tokens file is refused, nobody is let in until it is fixed: {err}");
                (stamp, Vec::new())
            }
        };
        *self.loaded.write().unwrap_or_else(|poison| poison.into_inner()) = fresh;
    }

    /// The token's holder, if the file knows the token. Every entry is
    /// compared, in constant time, so the time taken tells nothing.
    pub fn check(&self, token: &str) -> Option<Identity> {
        self.refresh();
        let hash = sha256(token.as_bytes());
        let loaded = self.loaded.read().unwrap_or_else(|poison| poison.into_inner());
        let mut found = None;
        for entry in &loaded.1 {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(Identity { name: entry.name.clone(), role: entry.role });
            }
        }
        found
    }

    /// The role the file gives `name` now (`None`: removed).
    fn role_of(&self, name: &str) -> Option<Role> {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|poison| poison.into_inner());
        loaded.1.iter().find(|entry| entry.name == name).map(|entry| entry.role)
    }
}

/// A new token: 256 random bits from the operating system, in hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Refused("the system's random source failed".into()))?;
    Ok(format!("hvm_{}", hex(&bytes)))
}

/// `serve add-token`: adds `name` with `role` to the file (made 0600 if new);
/// returns the token when it was generated here (printed once, never stored).
pub fn add_token(path: &Path, name: &str, role: Role, token: Option<&str>) -> Result<Option<String>> {
    if !valid_name(name) {
        return Err(Error::Usage(format!("--name {name:?}: 1 to 64 letters, digits or . _ @ -")));
    }
    if let Some(token) = token {
        if token.chars().count() < 32 || token.chars().any(char::is_whitespace) {
            return Err(Error::Usage(
                "--token: at least 32 characters and no spaces (or leave it out to get one)".into(),
            ));
        }
    }
    let (text, entries) = if path.exists() {
        let (_, entries) = read_entries(path)?;
        (String::from_utf8_lossy(&std::fs::read(path).map_err(|err| Error::io(path, err))?).into_owned(), entries)
    } else {
        crate::fs_security::refuse_symlink(path)?;
        (HEADER.to_owned(), Vec::new())
    };
    if entries.iter().any(|entry| entry.name == name) {
        return Err(Error::Usage(format!(
            "{}: a token named {name} is there already; remove it first (serve remove-token)",
            path.display()
        )));
    }
    let generated = match token {
        Some(_) => None,
        None => Some(new_token()?),
    };
    let token = token.or(generated.as_deref()).expect("given or generated");
    if entries.iter().any(|entry| bool::from(entry.hash.ct_eq(&sha256(token.as_bytes())))) {
        return Err(Error::Usage("--token: this token is there already under another name".into()));
    }
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{name} {} {}\n", role.as_str(), hex(&sha256(token.as_bytes()))));
    crate::fs_security::write_private_file(path, text.as_bytes())?;
    Ok(generated)
}

/// `serve remove-token`: removes `name`'s line from the file.
pub fn remove_token(path: &Path, name: &str) -> Result<()> {
    let (_, entries) = read_entries(path)?;
    if !entries.iter().any(|entry| entry.name == name) {
        let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "{}: no token named {name}; there are: {}",
            path.display(),
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        )));
    }
    let text = String::from_utf8_lossy(&std::fs::read(path).map_err(|err| Error::io(path, err))?).into_owned();
    let kept: String = text
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(name) || line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    crate::fs_security::write_private_file(path, kept.as_bytes())
}

/// The dashboard's open sessions, by the SHA-256 of their cookie.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Sessions {
    fn open(&self, name: &str) -> Result<String> {
        let cookie = new_token()?;
        let mut open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        open.retain(|_, (_, expires)| *expires > now);
        open.insert(sha256(cookie.as_bytes()), (name.to_owned(), now + SESSION_LIFETIME));
        Ok(cookie)
    }

    fn name_of(&self, cookie: &str) -> Option<String> {
        let open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        open.get(&sha256(cookie.as_bytes()))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(name, _)| name.clone())
    }

    fn close(&self, cookie: &str) {
        self.open.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&sha256(cookie.as_bytes()));
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Who the request is from: its bearer token, else its session cookie.
/// `Err` when a bearer token is given and wrong (a cookie is then not looked at).
fn identify(state: &Shared, headers: &HeaderMap) -> std::result::Result<Option<Identity>, ApiError> {
    if let Some(token) = bearer(headers) {
        return state.tokens.check(token).map(Some).ok_or_else(|| ApiError::unauthorized("this token is not known"));
    }
    Ok(session_cookie(headers).and_then(|cookie| {
        let name = state.sessions.name_of(cookie)?;
        // A token removed from the file ends its sessions.
        let role = state.tokens.role_of(&name)?;
        Some(Identity { name, role })
    }))
}

async fn require(state: Shared, needed: Role, mut request: Request, next: Next) -> Response {
    match identify(&state, request.headers()) {
        Err(err) => err.into_response(),
        Ok(None) => {
            ApiError::unauthorized("a token is needed: 'Authorization: Bearer <token>' (or log in)").into_response()
        }
        Ok(Some(identity)) if identity.role < needed => ApiError::forbidden(format!(
            "the token {} has the role {}; this needs {}",
            identity.name,
            identity.role.as_str(),
            needed.as_str()
        ))
        .into_response(),
        Ok(Some(identity)) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
    }
}

/// Middleware: a `read` (or `operate`) token, else 401.
pub async fn require_read_api(State(state): State<Shared>, request: Request, next: Next) -> Response {
    require(state, Role::Read, request, next).await
}

/// Middleware: an `operate` token, else 401 or 403.
pub async fn require_operate_api(State(state): State<Shared>, request: Request, next: Next) -> Response {
    require(state, Role::Operate, request, next).await
}

/// Middleware of the dashboard's pages: without a session, to the login page.
pub async fn require_dashboard(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    match identify(&state, request.headers()) {
        Ok(Some(identity)) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Ok(None) => Redirect::to("/login").into_response(),
        Err(err) => err.into_response(),
    }
}

pub fn routes() -> Router<Shared> {
    Router::new().route("/login", get(login_page).post(login)).route("/logout", axum::routing::post(logout))
}

async fn login_page() -> Html<String> {
    Html(super::dashboard::login_page(None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

async fn login(State(state): State<Shared>, Form(form): Form<LoginForm>) -> Response {
    let Some(identity) = state.tokens.check(form.token.trim()) else {
        tracing::warn!("a login with an unknown token");
        return (StatusCode::UNAUTHORIZED, Html(super::dashboard::login_page(Some("This token is not known."))))
            .into_response();
    };
    let cookie = match state.sessions.open(&identity.name) {
        Ok(cookie) => cookie,
        Err(err) => return ApiError::unavailable(err.to_string()).into_response(),
    };
    tracing::info!(name = %identity.name, "logged in");
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let set = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&set) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(cookie) = session_cookie(&headers) {
        state.sessions.close(cookie);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("hvmigrate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// For the tests of this module and the benchmark: the state of a server over `tokens`.
pub fn shared_for(ledger: &Path, tokens: &Path) -> Result<Shared> {
    Ok(Arc::new(super::AppState {
        ledger: Arc::new(super::Ledger::new(ledger)),
        tokens: Tokens::load(tokens)?,
        sessions: Sessions::default(),
        protect_metrics: false,
        secure_cookies: false,
        tickets: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_added_checked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let generated = add_token(&file, "ann", Role::Read, None).unwrap().unwrap();
        assert!(generated.starts_with("hvm_") && generated.len() == 68, "{generated}");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let given = "operate-token-of-bob-0123456789abcdef";
        assert_eq!(add_token(&file, "bob", Role::Operate, Some(given)).unwrap(), None);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&generated) && !text.contains(given), "only hashes are kept:\n{text}");
        assert!(add_token(&file, "ann", Role::Read, None).unwrap_err().to_string().contains("named ann"));
        assert!(add_token(&file, "carl", Role::Read, Some("short")).is_err());

        let tokens = Tokens::load(&file).unwrap();
        assert_eq!(tokens.check(&generated).unwrap().role, Role::Read);
        assert_eq!(tokens.check(given).unwrap().name, "bob");
        assert!(tokens.check("hvm_0000").is_none());

        remove_token(&file, "ann").unwrap();
        assert!(tokens.check(&generated).is_none(), "a removed token stops working without a restart");
        assert!(remove_token(&file, "ann").unwrap_err().to_string().contains("no token named ann; there are: bob"));
    }

    #[test]
    fn a_tokens_file_readable_by_others_or_malformed_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        add_token(&file, "ann", Role::Read, None).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Tokens::load(&file).err().unwrap().to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains("0644"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&file, "ann admin 00\n").unwrap();
        let err = Tokens::load(&file).err().unwrap().to_string();
        assert!(err.contains(&format!("{}:1:", file.display())) && err.contains("read or operate"), "{err}");
    }
}
