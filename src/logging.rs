//! Logging: human lines on stderr, and the run log that every command acting
//! on hosts writes to `logs/<hypervisors-file-name>.<YYYY_MM_DD_HH_MM>` (UTC).

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::error::Result;

/// How much goes to stderr: `-q` lowers it, each `-v` raises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Trace,
}

impl Verbosity {
    pub fn from_flags(verbose: u8, quiet: bool) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Verbose,
            (false, _) => Verbosity::Trace,
        }
    }

    fn level(self) -> LevelFilter {
        match self {
            Verbosity::Quiet => LevelFilter::ERROR,
            Verbosity::Normal => LevelFilter::INFO,
            Verbosity::Verbose => LevelFilter::DEBUG,
            Verbosity::Trace => LevelFilter::TRACE,
        }
    }
}

/// The run log once opened; until then its lines go nowhere.
#[derive(Clone, Default)]
pub struct RunLog {
    file: Arc<Mutex<Option<(PathBuf, File)>>>,
}

impl RunLog {
    /// Opens `<dir>/<hypervisors-file-name>.<YYYY_MM_DD_HH_MM>` for appending,
    /// creating the folder. Both are private (0700, 0600): the log names every
    /// host and what was done to it. Returns the path.
    pub fn open(&self, dir: &Path, hypervisors_file: &Path) -> Result<PathBuf> {
        crate::fs_security::private_dir(dir)?;
        let name = hypervisors_file.file_name().map_or_else(|| "hypervisors".into(), |name| name.to_string_lossy());
        let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M");
        let path = dir.join(format!("{name}.{stamp}"));
        // Appending: two runs in the same minute share the file, losing nothing.
        // The name is predictable, so a planted link is refused, never followed.
        let file = crate::fs_security::open_private_append(&path)?;
        *self.file.lock().unwrap_or_else(|poison| poison.into_inner()) = Some((path.clone(), file));
        Ok(path)
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.file.lock().unwrap_or_else(|poison| poison.into_inner()).as_ref().map(|(path, _)| path.clone())
    }
}

/// Each line is written straight to the file, so a crash loses nothing.
pub struct RunLogWriter(Arc<Mutex<Option<(PathBuf, File)>>>);

impl Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().unwrap_or_else(|poison| poison.into_inner()).as_mut() {
            Some((_, file)) => file.write_all(buf).map(|()| buf.len()),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = RunLogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RunLogWriter(self.file.clone())
    }
}

/// Installs the global subscriber. Call once, at start.
pub fn init(verbosity: Verbosity) -> RunLog {
    let run_log = RunLog::default();
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(|| StderrWriter)
        .with_ansi(color)
        .with_target(false)
        .fmt_fields(VisibleFields)
        .without_time()
        .with_filter(verbosity.level());
    let file = tracing_subscriber::fmt::layer()
        .with_writer(run_log.clone())
        .with_ansi(false)
        .with_target(true)
        .fmt_fields(VisibleFields)
        .with_timer(UtcSeconds)
        .with_filter(LevelFilter::DEBUG);
    // A second init (tests calling into the library) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
    run_log
}

/// While a live display is on screen, log lines are written around it, so
/// neither garbles the other.
static LIVE_DISPLAY: Mutex<Option<indicatif::MultiProgress>> = Mutex::new(None);

/// Tells the logger that `display` is on screen (or, with `None`, gone).
pub fn set_live_display(display: Option<indicatif::MultiProgress>) {
    *LIVE_DISPLAY.lock().unwrap_or_else(|poison| poison.into_inner()) = display;
}

struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let display = LIVE_DISPLAY.lock().unwrap_or_else(|poison| poison.into_inner()).clone();
        match display {
            Some(display) => display.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Log times in UTC, to the millisecond.
struct UtcSeconds;

impl tracing_subscriber::fmt::time::FormatTime for UtcSeconds {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// Fields as the default formatter writes them, then every control character
/// but newline and tab made visible: a remote command's stderr or a service's
/// error text can neither drive the terminal nor hide in the run log.
struct VisibleFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for VisibleFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut text = String::new();
        tracing_subscriber::fmt::format::DefaultFields::new()
            .format_fields(tracing_subscriber::fmt::format::Writer::new(&mut text), fields)?;
        writer.write_str(&crate::untrusted::visible(&text))
    }
}
