//! The `hvmigrate` binary: arguments in, library call, exit code out.

mod cli;

use std::path::Path;

use clap::Parser;

use hvmigrate::check_config::{self, InputPaths};
use hvmigrate::config::KeyMode;
use hvmigrate::logging::{self, RunLog, Verbosity};
use hvmigrate::output::{Format, Output};

use hvmigrate::clients::jira::{CommentOptions, JiraClient};
use hvmigrate::error::InputProblem;
use hvmigrate::{fs_security, reach, tickets, Error, ExitCode, Result};

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
    match &cli.command {
        Command::CheckConfig(args) => {
            fs_security::check_not_root(global.allow_root)?;
            let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Required)?;
            let log = run_log.open(&global.log_dir, &paths.hypervisors_file)?;
            tracing::info!(hosts = hypervisors.len(), log = %log.display(), "configuration is valid");
            output.config_summary(&check_config::summarize(&hypervisors, &credentials, &paths));
            if !args.reach {
                return Ok(ExitCode::Success);
            }
            let results = runtime()?.block_on(reach::check_all(&credentials));
            output.reach_table(&results);
            Ok(if results.iter().all(|reach| reach.ok) { ExitCode::Success } else { ExitCode::Input })
        }
        Command::CreateTickets(args) => {
            fs_security::check_not_root(global.allow_root)?;
            let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Optional)?;
            run_log.open(&global.log_dir, &paths.hypervisors_file)?;
            let jira_config = credentials.jira.as_ref().ok_or_else(|| missing_section(&paths, "jira"))?;
            let settings = tickets::CreateTickets {
                project: jira_config.project.clone(),
                issue_type: jira_config.issue_type.clone(),
                dry_run: args.dry_run,
            };
            let report = runtime()?.block_on(async {
                let jira = JiraClient::new(jira_config)?;
                tickets::create_tickets(&jira, &hypervisors, &settings).await
            })?;
            output.ticket_report(&report);
            Ok(if report.failed() == 0 { ExitCode::Success } else { ExitCode::HostFailed })
        }
        Command::Comment(args) => {
            fs_security::check_not_root(global.allow_root)?;
            let text = match (&args.text, &args.file) {
                (Some(text), _) => text.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|err| Error::input(InputProblem::new(file, format!("cannot read the comment: {err}"))))?,
                (None, None) => unreachable!("clap requires --text or --file"),
            };
            if text.trim().is_empty() {
                return Err(Error::input(InputProblem::new(Path::new("--text"), "the comment is empty")));
            }
            let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Required)?;
            run_log.open(&global.log_dir, &paths.hypervisors_file)?;
            let jira_config = credentials.jira.as_ref().ok_or_else(|| missing_section(&paths, "jira"))?;
            let settings = tickets::CommentAll {
                text,
                options: CommentOptions { internal: args.internal, role: None },
                dry_run: args.dry_run,
                parallel: credentials.workflow.limits.service_requests.clamp(1, 16),
            };
            let report = runtime()?.block_on(async {
                let jira = JiraClient::new(jira_config)?;
                tickets::comment_all(&jira, &hypervisors, &settings).await
            })?;
            output.ticket_report(&report);
            Ok(if report.failed() == 0 { ExitCode::Success } else { ExitCode::HostFailed })
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::Refused(format!("cannot start the async runtime: {err}")))
}

fn missing_section(paths: &InputPaths, section: &str) -> Error {
    Error::input(InputProblem::new(&paths.creds_file, format!("this command needs the '{section}' section")))
}
