//! Errors of the library, and the exit-code contract they map to.

use std::fmt;
use std::path::{Path, PathBuf};

/// The process exit codes, as documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Every host succeeded.
    Success = 0,
    /// At least one host failed or was blocked.
    HostFailed = 1,
    /// Bad usage, bad input files or unreachable prerequisites; nothing was changed.
    Input = 2,
}

/// One problem in an input file, located as precisely as it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl InputProblem {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        InputProblem { file: file.to_owned(), line: None, column: None, message: message.into() }
    }

    pub fn at_line(file: &Path, line: usize, message: impl Into<String>) -> Self {
        InputProblem { line: Some(line), ..InputProblem::new(file, message) }
    }
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more problems in input files; reported all at once.
    #[error("{}", join_lines(.0))]
    Input(Vec<InputProblem>),
    /// The tool refuses to start (permissions, root); the message says how to fix it.
    #[error("{0}")]
    Refused(String),
    /// A flag or argument that cannot be used as given.
    #[error("{0}")]
    Usage(String),
    /// A local file or folder the tool needs could not be written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A service needed before anything is changed could not be used.
    #[error("{0}")]
    Service(#[from] crate::clients::ServiceError),
}

impl Error {
    pub fn input(problem: InputProblem) -> Self {
        Error::Input(vec![problem])
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_owned(), source }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Input(_) | Error::Refused(_) | Error::Usage(_) | Error::Io { .. } | Error::Service(_) => {
                ExitCode::Input
            }
        }
    }
}

fn join_lines(problems: &[InputProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
