//! The ledger on PostgreSQL: where it is (`postgres://` URL, never with a
//! password), the password (`PGPASSWORD`, `~/.pgpass` as libpq reads them,
//! or `state.password` in credentials.yaml), TLS as libpq's `sslmode` says,
//! and the connection.
//!
//! The connection is the synchronous `postgres` client, which runs its own
//! small runtime and would panic inside the tool's tokio runtime: it lives on
//! a thread of its own, and each query is sent there and waited for, as the
//! journal's callers wait for SQLite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::db::{DbError, DbResult, Row, Value};
use crate::secret::Secret;

/// libpq's `sslmode`, as far as this tool goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS always, the certificate not checked (libpq's `require` without a root file).
    Require,
    /// TLS, the certificate signed by the `sslrootcert` CA; any name.
    VerifyCa,
    /// TLS, signed by the `sslrootcert` CA and naming the host.
    VerifyFull,
}

/// Where a PostgreSQL ledger is, from its URL.
#[derive(Clone, Debug)]
pub struct PgTarget {
    host: String,
    port: u16,
    user: String,
    dbname: String,
    sslmode: SslMode,
    rootcert: Option<PathBuf>,
    /// The URL as given (it has no password: one is refused).
    shown: String,
}

/// Whether `--state` names a PostgreSQL ledger rather than a file.
pub fn is_url(state: &str) -> bool {
    state.starts_with("postgres://") || state.starts_with("postgresql://")
}

impl PgTarget {
    /// Reads `postgres://[user@]host[:port][/dbname][?sslmode=…&sslrootcert=…]`.
    /// The message of a refusal never repeats the URL (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|err| format!("not a PostgreSQL URL ({err})"))?;
        if url.password().is_some() {
            return Err("the URL holds a password; give it in PGPASSWORD, ~/.pgpass or state.password in \
                        credentials.yaml instead, never on the command line"
                .into());
        }
        let host = url.host_str().filter(|host| !host.is_empty()).ok_or("the URL names no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let user = match url.username() {
            "" => super::leases::process::user_name(),
            name => decode(name)?,
        };
        let dbname = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            name => decode(name)?,
        };
        let mut sslmode = SslMode::Prefer;
        let mut rootcert = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    sslmode = match value.as_ref() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        "allow" => {
                            return Err("sslmode=allow is not supported (it tries without TLS first): use disable, \
                                        prefer, require, verify-ca or verify-full"
                                .into())
                        }
                        other => {
                            return Err(format!(
                                "sslmode={} is not one of disable, prefer, require, verify-ca, verify-full",
                                crate::untrusted::visible(other)
                            ))
                        }
                    }
                }
                "sslrootcert" => rootcert = Some(PathBuf::from(value.as_ref())),
                "password" => {
                    return Err("the URL holds a password; give it in PGPASSWORD, ~/.pgpass or \
                                          state.password in credentials.yaml instead"
                        .into())
                }
                "application_name" | "connect_timeout" => {}
                other => {
                    return Err(format!(
                        "the URL option {} is not supported (only sslmode and sslrootcert)",
                        crate::untrusted::visible(other)
                    ))
                }
            }
        }
        Ok(PgTarget { host, port: url.port().unwrap_or(5432), user, dbname, sslmode, rootcert, shown: text.to_owned() })
    }

    /// The URL as given, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The password to give, from the first source that has one: `PGPASSWORD`,
    /// the password file (`PGPASSFILE` or `~/.pgpass`, libpq's format, ignored
    /// unless private), then `state.password` in credentials.yaml.
    fn password(&self) -> Option<Secret> {
        if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|password| !password.is_empty()) {
            return Some(Secret::new(password));
        }
        let file = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")));
        if let Some(found) = file.and_then(|file| pgpass_lookup(&file, self)) {
            return Some(found);
        }
        CONFIGURED_PASSWORD.get().cloned()
    }

    fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS: {err}"))?;
        let config = match self.sslmode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = self.roots()?;
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|err| format!("TLS: {err}"))?;
                if self.sslmode == SslMode::VerifyCa {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                        .with_no_client_auth()
                } else {
                    builder.with_webpki_verifier(verifier).with_no_client_auth()
                }
            }
        };
        Ok(Some(Arc::new(config)))
    }

    /// The CA certificates of `sslrootcert` (libpq's default `~/.postgresql/root.crt`).
    fn roots(&self) -> Result<rustls::RootCertStore, String> {
        use rustls::pki_types::pem::PemObject;
        let file = match &self.rootcert {
            Some(file) => file.clone(),
            None => std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".postgresql/root.crt"))
                .ok_or("sslmode verify-ca and verify-full need sslrootcert=<PEM file>")?,
        };
        let shown = file.display();
        let mut roots = rustls::RootCertStore::empty();
        let certificates = rustls::pki_types::CertificateDer::pem_file_iter(&file)
            .map_err(|err| format!("sslrootcert {shown}: {err}"))?;
        for certificate in certificates {
            let certificate = certificate.map_err(|err| format!("sslrootcert {shown}: {err}"))?;
            roots.add(certificate).map_err(|err| format!("sslrootcert {shown}: {err}"))?;
        }
        if roots.is_empty() {
            return Err(format!("sslrootcert {shown}: holds no certificate"));
        }
        Ok(roots)
    }

    fn config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("hvmigrate")
            .connect_timeout(std::time::Duration::from_secs(10))
            .ssl_mode(match self.sslmode {
                SslMode::Disable => postgres::config::SslMode::Disable,
                SslMode::Prefer => postgres::config::SslMode::Prefer,
                _ => postgres::config::SslMode::Require,
            });
        if let Some(password) = self.password() {
            config.password(password.expose());
        }
        config
    }
}

/// `state.password` from credentials.yaml, set once by the command that loaded it.
static CONFIGURED_PASSWORD: OnceLock<Secret> = OnceLock::new();

/// Gives the journal the password of `state.password` in credentials.yaml.
pub fn use_configured_password(password: &Secret) {
    let _ = CONFIGURED_PASSWORD.set(password.clone());
}

fn decode(text: &str) -> Result<String, String> {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| "the URL is not well encoded".to_owned())
}

/// libpq's password file: `host:port:database:user:password` lines, `*`
/// matching anything, `\:` and `\\` escaped, `#` comments; the first line
/// that matches wins. Like libpq, a file that others may read is ignored.
fn pgpass_lookup(file: &Path, target: &PgTarget) -> Option<Secret> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let port = target.port.to_string();
    let wanted = [target.host.as_str(), port.as_str(), target.dbname.as_str(), target.user.as_str()];
    text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).find_map(|line| {
        let fields = pgpass_fields(line);
        if fields.len() < 5 {
            return None;
        }
        let matches = fields[..4].iter().zip(wanted).all(|(field, want)| field == "*" || field == want);
        matches.then(|| Secret::new(fields[4..].join(":")))
    })
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// A query for the connection's thread.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

struct Worker {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl Worker {
    fn statement(&mut self, sql: &str) -> DbResult<postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(pg_error)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// A connection to a PostgreSQL ledger, on its own thread.
pub struct PgConn {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PgConn {
    pub fn connect(target: &PgTarget) -> Result<PgConn, String> {
        let tls = target.tls()?;
        let config = target.config();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::sync_channel::<Result<(), String>>(1);
        let thread = std::thread::Builder::new()
            .name("ledger-postgres".into())
            .spawn(move || {
                let connected = match tls {
                    None => config.connect(postgres::NoTls),
                    Some(tls) => config.connect(tls::MakeRustls(tls)),
                };
                let client = match connected {
                    Ok(client) => client,
                    Err(err) => {
                        let _ = ready.send(Err(pg_error(err).to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let mut worker = Worker { client, statements: HashMap::new() };
                for job in queue {
                    job(&mut worker);
                }
            })
            .map_err(|err| format!("cannot start the ledger's connection: {err}"))?;
        let connected = started.recv().unwrap_or_else(|_| Err("the connection ended at once".into()));
        let conn = PgConn { jobs: Some(jobs), thread: Some(thread) };
        connected.map(|()| conn)
    }

    fn call<T: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> DbResult<T> + Send + 'static) -> DbResult<T> {
        let closed = || DbError::Postgres("the connection to PostgreSQL is closed".into());
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker| {
            let _ = answer.send(f(worker));
        });
        self.jobs.as_ref().ok_or_else(closed)?.send(job).map_err(|_| closed())?;
        answered.recv().map_err(|_| closed())?
    }

    pub fn batch(&self, sql: &str) -> DbResult<()> {
        let sql = sql.to_owned();
        self.call(move |worker| worker.client.batch_execute(&sql).map_err(pg_error))
    }

    pub fn execute(&self, sql: &str, params: Vec<Value>) -> DbResult<u64> {
        let sql = sql.to_owned();
        self.call(move |worker| {
            let statement = worker.statement(&sql)?;
            let params: Vec<PgParam> = params.into_iter().map(PgParam).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|param| param as &(dyn ToSql + Sync)).collect();
            worker.client.execute(&statement, &refs).map_err(pg_error)
        })
    }

    pub fn query(&self, sql: &str, params: Vec<Value>) -> DbResult<Vec<Row>> {
        let sql = sql.to_owned();
        self.call(move |worker| {
            let statement = worker.statement(&sql)?;
            let params: Vec<PgParam> = params.into_iter().map(PgParam).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|param| param as &(dyn ToSql + Sync)).collect();
            let rows = worker.client.query(&statement, &refs).map_err(pg_error)?;
            rows.iter()
                .map(|row| (0..row.len()).map(|index| read(row, index)).collect::<DbResult<_>>().map(Row))
                .collect()
        })
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn pg_error(err: postgres::Error) -> DbError {
    // `db error: …` alone hides the server's message; its text is what helps.
    let text = match err.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => err.to_string(),
    };
    DbError::Postgres(crate::untrusted::visible(&text).into_owned())
}

fn read(row: &postgres::Row, index: usize) -> DbResult<Value> {
    let number = |value: Option<i64>| value.map_or(Value::Null, Value::Int);
    let ty = row.columns()[index].type_().clone();
    let found = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index).map(number),
        Type::INT4 => row.try_get::<_, Option<i32>>(index).map(|value| number(value.map(i64::from))),
        Type::INT2 => row.try_get::<_, Option<i16>>(index).map(|value| number(value.map(i64::from))),
        Type::BOOL => row.try_get::<_, Option<bool>>(index).map(|value| number(value.map(i64::from))),
        _ => row.try_get::<_, Option<String>>(index).map(|value| value.map_or(Value::Null, Value::Text)),
    };
    found.map_err(|err| DbError::Type(format!("column {index} ({ty}): {err}")))
}

/// A value sent as the type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct PgParam(Value);

impl ToSql for PgParam {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let number = match &self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Int(number) => *number,
            Value::Text(text) => match *ty {
                Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL => text.parse()?,
                _ => return text.as_str().to_sql(&Type::TEXT, out),
            },
        };
        match *ty {
            Type::INT8 => number.to_sql(ty, out),
            Type::INT4 => i32::try_from(number)?.to_sql(ty, out),
            Type::INT2 => i16::try_from(number)?.to_sql(ty, out),
            Type::BOOL => (number != 0).to_sql(ty, out),
            _ => number.to_string().as_str().to_sql(&Type::TEXT, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `prefer` and `require`: encrypted, the certificate not checked (as libpq
/// does without a root file); the handshake's signatures still are.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain up to the root file is checked, not the host's name.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError;
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres over rustls (the TLS stack already in the tree), without
/// channel binding (SCRAM works without it).
mod tls {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    pub struct MakeRustls(pub Arc<rustls::ClientConfig>);

    impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for MakeRustls {
        type Stream = RustlsStream<S>;
        type TlsConnect = Connect;
        type Error = rustls::pki_types::InvalidDnsNameError;

        fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
            let name = rustls::pki_types::ServerName::try_from(domain.to_owned())?;
            Ok(Connect { config: self.0.clone(), name })
        }
    }

    pub struct Connect {
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    }

    type Connecting<S> = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream<S>>> + Send>>;

    impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Connect {
        type Stream = RustlsStream<S>;
        type Error = std::io::Error;
        type Future = Connecting<S>;

        fn connect(self, stream: S) -> Connecting<S> {
            Box::pin(async move {
                tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await.map(RustlsStream)
            })
        }
    }

    pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

    impl<S: AsyncRead + AsyncWrite + Unpin> postgres::tls::TlsStream for RustlsStream<S> {
        fn channel_binding(&self) -> ChannelBinding {
            ChannelBinding::none()
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_password_is_refused_without_repeating_it() {
        for url in ["postgres://ops:hunter2@db/ledger", "postgresql://db/ledger?password=hunter2"] {
            let refused = PgTarget::parse(url).unwrap_err();
            assert!(refused.contains("holds a password") && !refused.contains("hunter2"), "{refused}");
        }
        let target = PgTarget::parse("postgresql://ops@db.example:6543/ledger?sslmode=verify-full").unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.user.as_str(), target.dbname.as_str(), target.sslmode),
            ("db.example", 6543, "ops", "ledger", SslMode::VerifyFull)
        );
        assert!(PgTarget::parse("postgres://db/x?sslmode=allow").unwrap_err().contains("not supported"));
        assert!(PgTarget::parse("postgres://db/x?sslmode=bogus").unwrap_err().contains("not one of"));
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "# comment\nother:5432:*:*:wrong\ndb:*:ledger:ops:pa\\:ss:word\n*:*:*:*:fallback\n")
            .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let target = PgTarget::parse("postgres://ops@db/ledger").unwrap();
        assert_eq!(
            pgpass_lookup(&file, &target).map(|secret| secret.expose().to_owned()).as_deref(),
            Some("pa:ss:word")
        );
        let other = PgTarget::parse("postgres://ops@elsewhere/ledger").unwrap();
        assert_eq!(pgpass_lookup(&file, &other).map(|secret| secret.expose().to_owned()).as_deref(), Some("fallback"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(pgpass_lookup(&file, &target).is_none(), "a file others may read is ignored");
    }
}
