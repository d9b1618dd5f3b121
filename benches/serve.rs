//! Benchmark of `hvmigrate serve` (issue #20): the real server over a
//! 5,000-host ledger, 16 clients at once on keep-alive connections.
//!
//! The ledger: `hvmigrate lab history` (the real engine over the simulated
//! site, a simulated clock) lays down a campaign of HISTORY_HOSTS hosts. When
//! HOSTS is larger, the bench copies that campaign's per-host rows (host steps,
//! actions, their sub-commands, remote jobs, identity records) under new host
//! names until the ledger holds HOSTS hosts: every row is one the engine
//! wrote, only the name and the ids differ. (Laying down 5,000 hosts with the
//! engine itself takes far too long for a benchmark: see README, "Benchmarks".)
//!
//! Then `hvmigrate serve` (the release binary `cargo bench` builds) with a
//! tokens file from `hvmigrate serve add-token`, on 127.0.0.1, and CLIENTS
//! clients (one keep-alive connection each), one endpoint after the other:
//! `/api/v1/hosts` (the first page, a filtered page, the last page) and
//! `/metrics`. Printed per endpoint: requests per second, p50, p99 and the
//! longest latency, errors (any answer but 200); and serve's peak memory
//! (VmHWM) and CPU time. The target: p99 under 50 ms at 16 clients.
//!
//! `cargo bench --bench serve`. HOSTS (default 5000), HISTORY_HOSTS (default
//! 250), CLIENTS (default 16), SECONDS per endpoint (default 10) or REQUESTS
//! per endpoint, SEED override; LEDGER serves an existing ledger instead;
//! KEEP keeps the folder (ledger, serve's log); HVMIGRATE_BIN names another
//! binary.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{mib, quantile_ms, ChildGuard};

/// How long one client may wait for an answer before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn number(name: &str, default: usize) -> usize {
    support::setting(name, &default.to_string()).parse().unwrap_or_else(|_| panic!("{name} is a number"))
}

fn main() {
    let binary = std::env::var("HVMIGRATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hvmigrate").to_owned());
    let hosts = number("HOSTS", 5000);
    let history_hosts = number("HISTORY_HOSTS", 250).min(hosts);
    let clients = number("CLIENTS", 16).max(1);
    let seed = number("SEED", 1);
    let budget = match std::env::var("REQUESTS") {
        Ok(requests) => Budget::Requests(requests.parse().expect("REQUESTS is a number")),
        Err(_) => Budget::Seconds(Duration::from_secs(number("SECONDS", 10) as u64)),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("a temporary folder");
    println!("serve benchmark: {clients} clients, one keep-alive connection each; {} CPUs", cpus());
    println!("  binary {binary}");

    let ledger = match std::env::var_os("LEDGER") {
        Some(path) => PathBuf::from(path),
        None => build_ledger(Path::new(&binary), dir.path(), hosts, history_hosts, seed),
    };
    let size = ledger_bytes(&ledger);
    let counts = Counts::of(&ledger);
    println!(
        "ledger: {} hosts, {} host steps, {} actions, {} sub-commands, {:.1} MiB",
        counts.hosts,
        counts.host_steps,
        counts.actions,
        counts.sub_commands,
        mib(size)
    );

    let (hosts_read, metrics_read) = full_reads(&ledger);
    println!(
        "one full read of the ledger, in-process (median of 5): every host's summary {:.0} ms, the metrics' text {:.0} ms",
        hosts_read.as_secs_f64() * 1000.0,
        metrics_read.as_secs_f64() * 1000.0
    );

    let tokens = dir.path().join("tokens");
    let token = add_token(Path::new(&binary), &tokens);
    let (guard, url) = start_serve(Path::new(&binary), &ledger, &tokens, dir.path());
    let pid = guard.pid();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let per_page = 100;
    let last_page = counts.hosts.div_ceil(per_page).max(1);
    let endpoints = [
        ("hosts, first page", "/api/v1/hosts".to_owned()),
        (
            "hosts, filtered",
            format!("/api/v1/hosts?outcome=succeeded&position={}&per_page=50", busiest_position(&ledger)),
        ),
        ("hosts, last page", format!("/api/v1/hosts?page={last_page}&per_page={per_page}")),
        ("metrics", "/metrics".to_owned()),
    ];
    let cpu_before = support::cpu_time(pid).unwrap_or_default();
    let mut results = Vec::new();
    for (name, path) in &endpoints {
        let figures = runtime.block_on(drive(&url, path, &token, clients, budget));
        println!(
            "  {name:<18} {:>7.1} req/s  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  errors {}/{}  \
             (first, alone: {:.1} ms; {} bytes)",
            figures.per_second(),
            quantile_ms(&figures.latencies, 0.50),
            quantile_ms(&figures.latencies, 0.99),
            quantile_ms(&figures.latencies, 1.0),
            figures.errors,
            figures.sent,
            figures.first.as_secs_f64() * 1000.0,
            figures.body_bytes
        );
        if let Some(first) = &figures.first_error {
            println!("    first error: {first}");
        }
        results.push((name, figures));
    }
    let cpu = support::cpu_time(pid).unwrap_or_default().saturating_sub(cpu_before);
    let hwm = support::status_bytes(pid, "VmHWM").unwrap_or(0);
    let wall: Duration = results.iter().map(|(_, figures)| figures.wall).sum();
    println!(
        "serve: peak memory (VmHWM) {:.1} MiB; CPU {:.1} s over {:.1} s of load ({:.0}% of one CPU)",
        mib(hwm),
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(f64::EPSILON)
    );
    let worst = results.iter().map(|(_, figures)| quantile_ms(&figures.latencies, 0.99)).fold(0.0, f64::max);
    println!(
        "target: p99 under 50 ms at 16 clients: {} (worst p99 {worst:.1} ms)",
        if worst < 50.0 { "met" } else { "missed" }
    );
    drop(guard);
    if std::env::var_os("KEEP").is_some() {
        println!("kept: {}", dir.keep().display());
    }
    let failed: Vec<_> = results.iter().filter(|(_, figures)| figures.errors == figures.sent).collect();
    assert!(
        failed.is_empty(),
        "every request failed on {}: see the first errors above",
        failed.iter().map(|(name, _)| name.to_string()).collect::<Vec<_>>().join(", ")
    );
}

#[derive(Clone, Copy)]
enum Budget {
    Seconds(Duration),
    /// In all, across the clients.
    Requests(usize),
}

#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    sent: usize,
    errors: usize,
    first_error: Option<String>,
    wall: Duration,
    /// Of one answer (the first that came back whole).
    body_bytes: usize,
    /// Of the first request, alone (not counted in the figures): a cold
    /// read of the ledger.
    first: Duration,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.sent as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

/// CLIENTS tasks, each with its own client (its own connection, kept alive),
/// asking for `path` one request after the other until the budget is spent.
async fn drive(url: &str, path: &str, token: &str, clients: usize, budget: Budget) -> Figures {
    let target = format!("{url}{path}");
    let client = |_| {
        reqwest::Client::builder().pool_max_idle_per_host(1).timeout(REQUEST_TIMEOUT).build().expect("an HTTP client")
    };
    // Warm-up: one connection and one answer per client, not measured.
    let clients: Vec<reqwest::Client> = (0..clients).map(client).collect();
    let mut first = None;
    for client in &clients {
        let sent = Instant::now();
        let _ = get(client, &target, token).await;
        first.get_or_insert(sent.elapsed());
    }
    let started = Instant::now();
    let issued = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (target, token, issued) = (target.clone(), token.to_owned(), issued.clone());
            tokio::spawn(async move {
                let mut figures = Figures::default();
                loop {
                    let more = match budget {
                        Budget::Seconds(seconds) => started.elapsed() < seconds,
                        Budget::Requests(requests) => issued.fetch_add(1, Ordering::Relaxed) < requests,
                    };
                    if !more {
                        break;
                    }
                    let sent = Instant::now();
                    let answer = get(&client, &target, &token).await;
                    figures.latencies.push(sent.elapsed());
                    figures.sent += 1;
                    match answer {
                        Ok(bytes) => figures.body_bytes = bytes,
                        Err(error) => {
                            figures.errors += 1;
                            figures.first_error.get_or_insert(error);
                        }
                    }
                }
                figures
            })
        })
        .collect();
    let mut all = Figures::default();
    for task in tasks {
        let figures = task.await.expect("a client task");
        all.latencies.extend(figures.latencies);
        all.sent += figures.sent;
        all.errors += figures.errors;
        all.body_bytes = all.body_bytes.max(figures.body_bytes);
        if all.first_error.is_none() {
            all.first_error = figures.first_error;
        }
    }
    all.wall = started.elapsed();
    all.latencies.sort();
    all.first = first.unwrap_or_default();
    all
}

/// One GET, read to its end: the body's size, or what went wrong.
async fn get(client: &reqwest::Client, target: &str, token: &str) -> Result<usize, String> {
    let response = client.get(target).bearer_auth(token).send().await.map_err(|err| format!("{target}: {err}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| format!("{target}: reading the body: {err}"))?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("{target}: {status}: {text}"));
    }
    Ok(body.len())
}

/// The ledger: `lab history` over `history_hosts`, copied out to `hosts`.
fn build_ledger(binary: &Path, dir: &Path, hosts: usize, history_hosts: usize, seed: usize) -> PathBuf {
    let ledger = dir.join("hvmigrate.db");
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["--allow-root", "-q", "--log-dir"])
        .arg(dir.join("logs"))
        .arg("--state")
        .arg(&ledger)
        .args(["lab", "history", "--hosts", &history_hosts.to_string(), "--seed", &seed.to_string(), "--dir"])
        .arg(dir.join("site"))
        .status()
        .expect("hvmigrate runs");
    assert!(status.success(), "lab history failed: {status}");
    println!(
        "ledger: lab history --hosts {history_hosts} (6 weeks, the real engine) laid down in {:.1} s, {:.1} MiB",
        started.elapsed().as_secs_f64(),
        mib(ledger_bytes(&ledger))
    );
    if hosts > history_hosts {
        let started = Instant::now();
        copy_out(&ledger, hosts);
        println!(
            "ledger: its hosts' rows copied under new names up to {hosts} hosts in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    ledger
}

/// Copies the hosts of the history under new names (`hv001.site…` becomes
/// `hv001-c2.site…`), copy after copy, until the ledger holds `hosts` hosts:
/// the same rows with new ids, their references kept. The runs are shared
/// (one run covers many hosts); leases, slots and reservations are not
/// copied (a finished history holds none).
fn copy_out(ledger: &Path, hosts: usize) {
    let original = ledger.with_extension("original.db");
    let conn = rusqlite::Connection::open(ledger).expect("the ledger");
    conn.execute("VACUUM INTO ?1", [original.to_str().expect("a UTF-8 path")]).expect("a copy of the ledger");
    conn.execute("ATTACH DATABASE ?1 AS src", [original.to_str().unwrap()]).expect("the copy attached");
    let max_id = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COALESCE(MAX(id), 0) FROM src.{table}"), [], |row| row.get(0)).unwrap()
    };
    let (steps, actions, subs, identity) =
        (max_id("host_steps"), max_id("actions"), max_id("sub_commands"), max_id("host_identity"));
    let history: Vec<String> = {
        let mut query = conn.prepare("SELECT DISTINCT host FROM src.host_steps ORDER BY host").unwrap();
        query.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert!(!history.is_empty(), "the history holds no host");
    let copies = hosts.div_ceil(history.len());
    conn.execute_batch("BEGIN").unwrap();
    for copy in 2..=copies {
        // The last copy may take only some of the hosts.
        let wanted = (hosts - (copy - 1) * history.len()).min(history.len());
        let included: Vec<String> =
            history[..wanted].iter().map(|host| format!("'{}'", host.replace('\'', "''"))).collect();
        let included = included.join(",");
        let k = (copy - 1) as i64;
        let rename = |column: &str| {
            format!(
                "CASE WHEN instr({column}, '.') > 0 THEN substr({column}, 1, instr({column}, '.') - 1) || '-c{copy}' || \
                 substr({column}, instr({column}, '.')) ELSE {column} || '-c{copy}' END"
            )
        };
        let copy_table = |table: &str, filter: &str, overrides: &[(&str, String)]| {
            let columns = columns(&conn, table);
            let select: Vec<String> = columns
                .iter()
                .map(|column| {
                    overrides
                        .iter()
                        .find(|(name, _)| name == column)
                        .map(|(_, expression)| expression.clone())
                        .unwrap_or_else(|| column.clone())
                })
                .collect();
            let sql = format!(
                "INSERT INTO main.{table} ({}) SELECT {} FROM src.{table} WHERE {filter}",
                columns.join(", "),
                select.join(", ")
            );
            conn.execute_batch(&sql).unwrap_or_else(|err| panic!("{sql}: {err}"));
        };
        copy_table(
            "host_steps",
            &format!("host IN ({included})"),
            &[("id", format!("id + {}", k * steps)), ("host", rename("host"))],
        );
        copy_table(
            "actions",
            &format!("host IN ({included})"),
            &[
                ("id", format!("id + {}", k * actions)),
                ("host_step_id", format!("host_step_id + {}", k * steps)),
                ("host", rename("host")),
            ],
        );
        copy_table(
            "sub_commands",
            &format!("host IN ({included})"),
            &[
                ("id", format!("id + {}", k * subs)),
                ("action_id", format!("action_id + {}", k * actions)),
                ("host", rename("host")),
            ],
        );
        copy_table(
            "remote_jobs",
            &format!("target IN ({included})"),
            &[("id", format!("id || '-c{copy}'")), ("target", rename("target"))],
        );
        copy_table(
            "host_identity",
            &format!("host IN ({included})"),
            &[
                ("id", format!("id + {}", k * identity)),
                ("record", format!("replace(record, host, {})", rename("host"))),
                ("host", rename("host")),
            ],
        );
    }
    conn.execute_batch("COMMIT; DETACH DATABASE src; PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(conn);
    std::fs::remove_file(&original).expect("the copy removed");
}

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut query = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')")).unwrap();
    query.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// What serve computes from the whole ledger when it changed: every host's
/// summary (`/api/v1/hosts`) and the metrics' text (`/metrics`), timed
/// in-process over one read-only connection, as serve opens it.
fn full_reads(ledger: &Path) -> (Duration, Duration) {
    use hvmigrate::serve::{api, metrics};
    let journal = hvmigrate::journal::Journal::open_read_only(ledger).expect("the ledger").expect("a ledger");
    let median = |read: &dyn Fn()| {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                read();
                started.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    let hosts = median(&|| {
        std::hint::black_box(api::summaries(&journal).expect("the hosts"));
    });
    let metrics = median(&|| {
        let scrape = metrics::Scrape::read(&journal).expect("a scrape");
        std::hint::black_box(metrics::encode(&scrape, hvmigrate::clock::now()));
    });
    (hosts, metrics)
}

/// The ledger with its write-ahead log.
fn ledger_bytes(ledger: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut path = ledger.as_os_str().to_owned();
            path.push(suffix);
            std::fs::metadata(PathBuf::from(path)).ok()
        })
        .map(|meta| meta.len())
        .sum()
}

struct Counts {
    hosts: usize,
    host_steps: usize,
    actions: usize,
    sub_commands: usize,
}

impl Counts {
    fn of(ledger: &Path) -> Self {
        let conn = rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the ledger");
        let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap() as usize;
        Counts {
            hosts: count("SELECT COUNT(DISTINCT host) FROM host_steps"),
            host_steps: count("SELECT COUNT(*) FROM host_steps"),
            actions: count("SELECT COUNT(*) FROM actions"),
            sub_commands: count("SELECT COUNT(*) FROM sub_commands"),
        }
    }
}

/// The campaign step the most hosts' latest success was (the filtered page's `position`).
fn busiest_position(ledger: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("the ledger");
    conn.query_row(
        "SELECT step FROM host_steps WHERE id IN
             (SELECT MAX(id) FROM host_steps WHERE outcome = 'succeeded' AND step <> 'noops' GROUP BY host)
         GROUP BY step ORDER BY COUNT(*) DESC LIMIT 1",
        [],
        |row| row.get(0),
    )
    .unwrap_or_else(|_| "none".to_owned())
}

/// `hvmigrate serve add-token`: a read token, generated by the tool.
fn add_token(binary: &Path, tokens: &Path) -> String {
    let out = Command::new(binary)
        .args(["--allow-root", "--output", "json", "serve", "add-token", "--tokens-file"])
        .arg(tokens)
        .args(["--name", "bench", "--role", "read"])
        .output()
        .expect("hvmigrate runs");
    assert!(out.status.success(), "serve add-token failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from serve add-token");
    json["token"].as_str().expect("a generated token").to_owned()
}

/// `hvmigrate serve` on 127.0.0.1 (a free port), its log in a file as a
/// service manager would keep it; stopped (SIGINT, then SIGKILL) however the
/// bench ends.
fn start_serve(binary: &Path, ledger: &Path, tokens: &Path, dir: &Path) -> (ChildGuard, String) {
    let log = std::fs::File::create(dir.join("serve.log")).expect("a log file");
    let mut child = Command::new(binary)
        .args(["--allow-root", "--output", "json", "--state"])
        .arg(ledger)
        .args(["serve", "--listen", "127.0.0.1:0", "--tokens-file"])
        .arg(tokens)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("hvmigrate serve starts");
    let stdout = child.stdout.take().expect("its stdout");
    let guard = ChildGuard { child, grace: Duration::from_secs(5) };
    // Its first answer (a JSON document, over several lines) says where it
    // listens; the rest is drained so that it never blocks on stdout.
    let (sender, first_answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = std::io::BufReader::new(stdout);
        let first = serde_json::Deserializer::from_reader(&mut stdout).into_iter::<serde_json::Value>().next();
        let _ = sender.send(first.and_then(Result::ok));
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    let first = first_answer.recv_timeout(Duration::from_secs(60)).ok().flatten();
    let url = first.as_ref().and_then(|json| json["serving"].as_str().map(str::to_owned)).unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
        panic!("hvmigrate serve gave no address: {first:?}\n{log}")
    });
    println!("serve: {url} (pid {})", guard.pid());
    (guard, url)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}
