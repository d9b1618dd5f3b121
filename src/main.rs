//! The `hvmigrate` binary: arguments in, library call, exit code out.

mod cli;

use clap::Parser;

use hvmigrate::check_config::{self, InputPaths};
use hvmigrate::config::KeyMode;
use hvmigrate::logging::{self, RunLog, Verbosity};
use hvmigrate::output::{Format, Output};
use hvmigrate::{fs_security, ExitCode, Result};

use cli::{Cli, Command, OutputFormat};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let global = &cli.global;
    let run_log = logging::init(Verbosity::from_flags(global.verbose, global.quiet));
    let output = Output::new(match global.output {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    });
    let code = match run(&cli, &output, &run_log) {
        Ok(code) => code,
        Err(err) => {
            output.error(&err);
            err.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}

fn run(cli: &Cli, output: &Output, run_log: &RunLog) -> Result<ExitCode> {
    let global = &cli.global;
    let paths = InputPaths { hypervisors_file: global.hypervisors_file.clone(), creds_file: global.creds_file.clone() };
    match cli.command {
        Command::CheckConfig => {
            fs_security::check_not_root(global.allow_root)?;
            let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Required)?;
            let log = run_log.open(&global.log_dir, &paths.hypervisors_file)?;
            tracing::info!(hosts = hypervisors.len(), log = %log.display(), "configuration is valid");
            output.config_summary(&check_config::summarize(&hypervisors, &credentials, &paths));
            Ok(ExitCode::Success)
        }
    }
}
