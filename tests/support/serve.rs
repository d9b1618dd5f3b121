//! `hvmigrate serve` started by a test on 127.0.0.1 (port chosen by the
//! system), a plain HTTP/1.1 client for it, and its stop by SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use super::Workspace;

pub struct Served {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub address: String,
    stderr: Arc<Mutex<String>>,
    command: String,
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {self:?}"))
    }
}

impl Workspace {
    /// Starts `hvmigrate serve --listen 127.0.0.1:0 <args>` and waits for its address.
    pub fn serve(&self, args: &[&str]) -> Served {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut run = self.hvmigrate(&all);
        let command = format!("hvmigrate {}", all.join(" "));
        run.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = run.command.spawn().expect("the binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = pipe.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        // The rest of stdout is drained so the server never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))
            .map(|word| word.trim_end_matches(':').to_owned());
        let Some(url) = url else {
            let status = child.wait().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            panic!("{command}: no address on stdout ({status})\nstdout: {first}\nstderr: {}", stderr.lock().unwrap());
        };
        let address = url.split("://").nth(1).unwrap().to_owned();
        Served { child: Some(child), url, address, stderr, command }
    }
}

impl Served {
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// GET `path` with these extra headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.request("GET", path, headers, None)
    }

    /// GET with `Authorization: Bearer <token>`.
    pub fn get_with(&self, path: &str, token: &str) -> Answer {
        let value = format!("Bearer {token}");
        self.request("GET", path, &[("Authorization", &value)], None)
    }

    /// POST a form.
    pub fn post_form(&self, path: &str, form: &str) -> Answer {
        self.request("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], Some(form))
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        let mut stream = TcpStream::connect(&self.address)
            .unwrap_or_else(|err| panic!("{}: {err}\n{}", self.command, self.stderr()));
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.address);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or(""));
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) =
            text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: no answer: {text:?}"));
        let mut lines = head.lines();
        let status = lines.next().and_then(|line| line.split_whitespace().nth(1)).and_then(|code| code.parse().ok());
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect();
        let chunked =
            headers.iter().any(|(key, value)| key.eq_ignore_ascii_case("transfer-encoding") && value == "chunked");
        let body = if chunked { dechunk(body) } else { body.to_owned() };
        Answer { status: status.unwrap_or_else(|| panic!("{method} {path}: {head}")), headers, body }
    }

    /// SIGTERM, then the exit code and everything it logged.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill with a pid of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        (status.code(), self.stderr())
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A ledger of a campaign spread over two weeks (`lab history`: the real
/// engine over the simulated site), at `state/history.db`.
pub fn lab_ledger(ws: &Workspace, hosts: usize) -> &'static str {
    let hosts = hosts.to_string();
    let args = ["lab", "history", "--hosts", &hosts, "--weeks", "2", "--seed", "4", "--dir", "site", "-q"];
    ws.hvmigrate(&args).arg("--state").arg("state/history.db").expect_code(0);
    "state/history.db"
}

/// `serve add-token`: the token it generated.
pub fn add_token(ws: &Workspace, file: &str, name: &str, role: &str) -> String {
    let out = ws
        .hvmigrate(&["serve", "add-token", "--tokens-file", file, "--name", name, "--role", role, "--output", "json"])
        .expect_code(0);
    let json: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("{err}\n{}", out.report()));
    json["token"].as_str().unwrap_or_else(|| panic!("no token\n{}", out.report())).to_owned()
}

impl Served {
    /// A client for another server of 127.0.0.1 (one the test started).
    pub fn at(address: &str) -> Served {
        Served {
            child: None,
            url: format!("http://{address}"),
            address: address.to_owned(),
            stderr: Arc::default(),
            command: format!("a server on {address}"),
        }
    }

    /// Whether something accepts connections there yet.
    pub fn answers(&self) -> bool {
        TcpStream::connect(&self.address).is_ok()
    }
}
