//! The `hvmigrate` binary: arguments in, library call, exit code out.

mod cli;

use std::path::Path;
use std::sync::Arc;

use clap::Parser;

use hvmigrate::check_config::{self, InputPaths};
use hvmigrate::clients::http::RetryPolicy;
use hvmigrate::clients::jira::{CommentOptions, JiraClient};
use hvmigrate::config::{HostName, KeyMode};
use hvmigrate::demo::{self, DemoSettings};
use hvmigrate::error::InputProblem;
use hvmigrate::journal::Journal;
use hvmigrate::lab;
use hvmigrate::logging::{self, RunLog, Verbosity};
use hvmigrate::output::{Format, Output};
use hvmigrate::workflow::context::Services;
use hvmigrate::workflow::host_run::StopSignal;
use hvmigrate::workflow::manager::{self, RunSettings};
use hvmigrate::workflow::{steps, Step};
use hvmigrate::{fs_security, reach, tickets, Error, ExitCode, Result};

use cli::{
    Cli, Command, InventoryArgs, JournalCommand, LabCommand, OutputFormat, ReportArgs, RunArgs, SccCollectionArgs,
    SccCommand, ServeArgs, ServeCommand, StatusArgs, VmCommand,
};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let global = &cli.global;
    let run_log = logging::init(Verbosity::from_flags(global.verbose, global.quiet));
    let output = Output::new(match global.output {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    });
    // `vm exec` exits with the guest command's own exit code.
    if let Command::Vm(command) = &cli.command {
        return std::process::ExitCode::from(vm(&cli, command, &output, &run_log));
    }
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
                (None, Some(file)) => {
                    let bytes =
                        hvmigrate::config::input::read_capped(file, "the comment file").map_err(Error::input)?;
                    String::from_utf8(bytes)
                        .map_err(|_| Error::input(InputProblem::new(file, "the comment file is not valid UTF-8")))?
                }
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
        Command::Run(args) => run_step(cli, args, &paths, output, run_log),
        Command::Status(args) => status(cli, args, output),
        Command::Inventory(args) => inventory(cli, args, output),
        Command::Report(args) => report(cli, args, output),
        Command::Scc(command) => scc(cli, command, &paths, output, run_log),
        Command::Demo(args) => {
            // The demo acts only on its own simulated site, so root is no concern here.
            let settings =
                DemoSettings { hosts: args.hosts, seed: args.seed, dir: args.dir.clone(), quiet: global.quiet };
            let report = runtime()?.block_on(demo::run(&settings, output, run_log))?;
            output.demo_report(&report);
            Ok(report.exit_code())
        }
        // Lab commands act only on the simulated site, so root is no concern here.
        Command::Lab(LabCommand::History(args)) => {
            let settings = hvmigrate::lab_history::HistorySettings {
                hosts: args.hosts,
                weeks: args.weeks,
                seed: args.seed,
                state: global.state.clone(),
                dir: args.dir.clone(),
            };
            let report = runtime()?.block_on(hvmigrate::lab_history::history(&settings, run_log))?;
            output.lab_history(&report);
            Ok(ExitCode::Success)
        }
        Command::Lab(command) => lab_command(command, output),
        Command::Journal(JournalCommand::Copy { from, to }) => journal_copy(cli, from, to, output),
        Command::Serve(args) => serve(cli, args, output),
        // Generated from the definitions in cli.rs; they read and change nothing else.
        Command::Completions(args) => {
            output.generated(&cli::completion_script(args.shell));
            Ok(ExitCode::Success)
        }
        Command::Man(args) => match &args.dir {
            None => {
                let pages = cli::manual_pages(false);
                output.generated(&pages[0].roff);
                Ok(ExitCode::Success)
            }
            Some(dir) => {
                let written = hvmigrate::manual::write_pages(dir, &cli::manual_pages(true))?;
                output.files_written(&written);
                Ok(ExitCode::Success)
            }
        },
        Command::Vm(_) => unreachable!("vm commands are run by main"),
    }
}

/// `hvmigrate vm …`: the host of the list and the domain, then the library;
/// the exit code is the guest command's for `exec`.
fn vm(cli: &Cli, command: &VmCommand, output: &Output, run_log: &RunLog) -> u8 {
    use hvmigrate::hosts::vm::PowerAction;
    use hvmigrate::vm::{VmFailure, VmSession, VmTarget};
    let global = &cli.global;
    let paths = InputPaths { hypervisors_file: global.hypervisors_file.clone(), creds_file: global.creds_file.clone() };
    let result = (|| -> std::result::Result<u8, VmFailure> {
        fs_security::check_not_root(global.allow_root)?;
        let (hypervisors, credentials) = check_config::load_inputs(&paths, KeyMode::Optional)?;
        // Read before anything runs: a missing file changes nothing.
        let stdin = match command {
            VmCommand::Exec(args) => match &args.stdin {
                Some(file) => {
                    Some(hvmigrate::config::input::read_capped(file, "the --stdin file").map_err(Error::input)?)
                }
                None => None,
            },
            _ => None,
        };
        run_log.open(&global.log_dir, &paths.hypervisors_file)?;
        let host = match command {
            VmCommand::List { host }
            | VmCommand::Info { host, .. }
            | VmCommand::Stats { host, .. }
            | VmCommand::Power { host, .. }
            | VmCommand::Autostart { host, .. } => host,
            VmCommand::Exec(args) => &args.host,
        };
        let target =
            VmTarget { credentials: &credentials, hypervisors: &hypervisors, journal_path: &global.state, host };
        runtime()?.block_on(async {
            close_ssh_and_exit_on_ctrl_c();
            let session = VmSession::open(&target).await?;
            match command {
                VmCommand::List { .. } => output.vm_list(&session.list().await?),
                VmCommand::Info { domain, .. } => output.vm_info(&session.info(domain).await?),
                VmCommand::Stats { domain, .. } => output.vm_stats(&session.stats(domain.as_deref()).await?),
                VmCommand::Exec(args) => {
                    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
                    let exec = session.exec(&args.domain, &args.command, stdin.as_deref(), timeout).await?;
                    output.vm_exec(&exec);
                    return Ok(exec.output.exit_code.clamp(0, 255) as u8);
                }
                VmCommand::Power { domain, action, .. } => {
                    let action = match action {
                        cli::VmPowerAction::Start => PowerAction::Start,
                        cli::VmPowerAction::Shutdown => PowerAction::Shutdown,
                        cli::VmPowerAction::Reboot => PowerAction::Reboot,
                        cli::VmPowerAction::Stop => PowerAction::Stop,
                    };
                    output.vm_change(&session.power(domain, action).await?)
                }
                VmCommand::Autostart { domain, setting, .. } => {
                    output.vm_change(&session.autostart(domain, matches!(setting, cli::OnOff::On)).await?)
                }
            }
            Ok(ExitCode::Success as u8)
        })
    })();
    match result {
        Ok(code) => code,
        Err(failure) => {
            output.error(&failure.error);
            failure.code as u8
        }
    }
}

/// `hvmigrate lab serve|show`: arguments become plain settings.
fn lab_command(command: &LabCommand, output: &Output) -> Result<ExitCode> {
    match command {
        LabCommand::Serve(args) => {
            let settings = lab::ServeSettings {
                hosts: args.hosts,
                seed: args.seed,
                dir: args.dir.clone(),
                port_base: args.port_base,
                http_latency_ms: args.http_latency_ms,
                ssh_latency_ms: args.ssh_latency_ms,
                no_oddities: args.no_oddities,
                mirror_nova: args.mirror_nova.clone(),
            };
            runtime()?.block_on(lab::serve(&settings, output))?;
        }
        LabCommand::Show(args) => {
            let source = match (&args.dir, &args.url) {
                (_, Some(url)) => lab::ShowSource::Url(url.clone()),
                (Some(dir), None) => lab::ShowSource::Dir(dir.clone()),
                (None, None) => return Err(usage("lab show needs --dir or --url")),
            };
            let control = lab::control_url(&source)?;
            let world = runtime()?.block_on(lab::fetch_world(&control))?;
            output.lab_view(&lab::view(&world, &control), &world);
        }
        LabCommand::Reinstall(args) => {
            let source = match (&args.lab.dir, &args.lab.url) {
                (_, Some(url)) => lab::ShowSource::Url(url.clone()),
                (Some(dir), None) => lab::ShowSource::Dir(dir.clone()),
                (None, None) => return Err(usage("lab reinstall needs --dir or --url")),
            };
            let control = lab::control_url(&source)?;
            runtime()?.block_on(lab::reinstall(&control, &args.host, args.wrong_machine))?;
            output.lab_reinstalled(&args.host);
        }
        LabCommand::History(_) => unreachable!("run above"),
    }
    Ok(ExitCode::Success)
}

/// `hvmigrate run`: arguments become [`RunSettings`], then the manager runs.
fn run_step(cli: &Cli, args: &RunArgs, paths: &InputPaths, output: &Output, run_log: &RunLog) -> Result<ExitCode> {
    let global = &cli.global;
    fs_security::check_not_root(global.allow_root)?;
    let step: Step = args.step.parse().map_err(|err: String| usage(&err))?;
    if steps::plan(step, &Default::default()).is_none() {
        let available: Vec<&str> = steps::available().into_iter().map(Step::name).collect();
        return Err(usage(&format!(
            "step {step} is not automated in this version; available: {}",
            available.join(", ")
        )));
    }
    let only = args
        .only
        .iter()
        .map(|host| HostName::parse(host).map_err(|err| usage(&format!("--only: {err}"))))
        .collect::<Result<Vec<_>>>()?;
    if let Some(redo) = &args.redo {
        if only.is_empty() {
            return Err(usage("--redo takes a host back in the campaign: name it with --only"));
        }
        let plan = steps::plan(step, &Default::default()).expect("checked above");
        if !redo.is_empty() && !plan.actions.iter().any(|action| action.name() == redo) {
            let names: Vec<&str> = plan.actions.iter().map(|action| action.name()).collect();
            return Err(usage(&format!("--redo {redo}: {step} has no such action; its actions: {}", names.join(", "))));
        }
    }
    let (hypervisors, credentials) = check_config::load_inputs(paths, KeyMode::Required)?;
    let hosts = manager::select_hosts(&hypervisors, &only)?.len();
    let question = match &args.redo {
        Some(redo) if redo.is_empty() => Some(format!("Take {hosts} host(s) back to {step} (--redo)?")),
        Some(redo) => Some(format!("Run {step} on {hosts} host(s) and repeat {redo} (--redo)?")),
        None if step.is_destructive() => Some(format!("Run {step} on {hosts} host(s)?")),
        None => None,
    };
    if let Some(question) = question.filter(|_| !args.dry_run && !args.yes) {
        if !output.confirm(&question)? {
            return Err(usage("not confirmed; nothing was done"));
        }
    }
    let settings = RunSettings {
        step,
        parallel: match args.parallel {
            None => 1,
            Some(0) => hosts.max(1),
            Some(n) => n,
        },
        only,
        dry_run: args.dry_run,
        force: args.force,
        redo: args.redo.clone(),
        claim: args.claim,
        journal: global.state.clone(),
    };
    let log = run_log.open(&global.log_dir, &paths.hypervisors_file)?;
    let credentials = Arc::new(credentials);
    let summary = runtime()?.block_on(async {
        let services = Arc::new(Services::connect(&credentials, RetryPolicy::default()).await?);
        let stop = StopSignal::default();
        stop_on_ctrl_c(stop.clone());
        manager::run(&settings, &hypervisors, credentials.clone(), services, output.progress(global.quiet), stop).await
    })?;
    output.run_summary(&summary, Some(&log));
    Ok(summary.exit_code())
}

/// The first Ctrl-C (or a SIGTERM or SIGHUP) lets running actions finish and
/// be recorded and starts nothing new; a second one aborts.
fn stop_on_ctrl_c(stop: StopSignal) {
    hvmigrate::ssh::terminate_gracefully();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut terminate), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            return;
        };
        let mut first = true;
        loop {
            let name = tokio::select! {
                signal = tokio::signal::ctrl_c() => if signal.is_ok() { "Ctrl-C" } else { return },
                _ = terminate.recv() => "SIGTERM",
                _ = hangup.recv() => "SIGHUP",
            };
            if first {
                tracing::warn!(
                    "stopping on {name}: running actions finish and are recorded, nothing new starts; again to abort"
                );
                stop.stop();
                first = false;
                continue;
            }
            tracing::error!("aborted on {name}");
            // Exiting skips destructors: stop the SSH masters first.
            hvmigrate::ssh::close_every_master();
            std::process::exit(130);
        }
    });
}

/// Ctrl-C while only reading: stop at once, but first the SSH masters
/// (exiting skips destructors).
fn close_ssh_and_exit_on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::error!("interrupted");
            hvmigrate::ssh::close_every_master();
            std::process::exit(130);
        }
    });
}

/// `hvmigrate journal copy`: a campaign from one ledger into another, counted on both sides.
fn journal_copy(cli: &Cli, from: &std::path::Path, to: &std::path::Path, output: &Output) -> Result<ExitCode> {
    fs_security::check_not_root(cli.global.allow_root)?;
    if from == to {
        return Err(Error::input(InputProblem::new(to, "--from and --to are the same ledger")));
    }
    load_ledger_password(cli)?;
    let Some(source) = Journal::open_read_only(from)? else {
        return Err(Error::input(InputProblem::new(from, "no journal here: nothing to copy")));
    };
    let target = Journal::open(to)?;
    output.journal_copy(&source.copy_into(&target)?);
    Ok(ExitCode::Success)
}

/// A PostgreSQL ledger's password from the credentials file's `state.password`,
/// when the file is there (its other sections are not used).
fn load_ledger_password(cli: &Cli) -> Result<()> {
    if cli.global.creds_file.exists() {
        fs_security::check_secret_file(&cli.global.creds_file)?;
        let credentials = hvmigrate::config::Credentials::load(&cli.global.creds_file)?;
        if let Some(password) = credentials.state.as_ref().and_then(|state| state.password.as_ref()) {
            hvmigrate::journal::use_configured_password(password);
        }
    }
    Ok(())
}

/// The journal, read only; for a PostgreSQL ledger the credentials file's
/// `state.password` is read first when the file is there (other sections are not used).
fn open_ledger_read_only(cli: &Cli) -> Result<Option<Journal>> {
    let state = &cli.global.state;
    if state.to_str().is_some_and(hvmigrate::journal::is_postgres_url) {
        load_ledger_password(cli)?;
    }
    Journal::open_read_only(state)
}

/// `hvmigrate status`: from the journal only.
fn status(cli: &Cli, args: &StatusArgs, output: &Output) -> Result<ExitCode> {
    fs_security::check_not_root(cli.global.allow_root)?;
    let Some(journal) = open_ledger_read_only(cli)? else {
        return Err(Error::input(InputProblem::new(&cli.global.state, "no journal here yet: no step has run")));
    };
    if args.runs {
        output.runs_under_way(&journal.runs_under_way()?);
        return Ok(ExitCode::Success);
    }
    match &args.host {
        Some(host) => {
            let host = HostName::parse(host).map_err(|err| usage(&format!("--host: {err}")))?;
            output.host_history(host.as_str(), &journal.host_history(host.as_str())?);
        }
        None => output.host_statuses(&journal.host_statuses()?),
    }
    Ok(ExitCode::Success)
}

/// `hvmigrate inventory`: the identity records of the journal.
fn inventory(cli: &Cli, args: &InventoryArgs, output: &Output) -> Result<ExitCode> {
    fs_security::check_not_root(cli.global.allow_root)?;
    let Some(journal) = open_ledger_read_only(cli)? else {
        return Err(Error::input(InputProblem::new(&cli.global.state, "no journal here yet: no step has run")));
    };
    let host = match &args.host {
        Some(host) => Some(HostName::parse(host).map_err(|err| usage(&format!("--host: {err}")))?),
        None => None,
    };
    let rows: Vec<_> = journal
        .identity_history(None)?
        .into_iter()
        .map(|row| (row.host, row.step, row.kind, row.recorded_at, row.record))
        .collect();
    output.inventory(&hvmigrate::identity::inventory(&rows, host.as_ref().map(HostName::as_str)));
    Ok(ExitCode::Success)
}

/// `hvmigrate report`: from the journal only; no service is contacted.
fn report(cli: &Cli, args: &ReportArgs, output: &Output) -> Result<ExitCode> {
    use hvmigrate::report::{self, ReportSettings};
    fs_security::check_not_root(cli.global.allow_root)?;
    let bound = |flag: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| report::parse_bound(text).map_err(|err| usage(&format!("{flag}: {err}"))))
            .transpose()
    };
    let (since, until) = (bound("--since", &args.since)?, bound("--until", &args.until)?);
    let hosts = if args.all {
        None
    } else {
        let list = hvmigrate::config::HypervisorList::load(&cli.global.hypervisors_file, KeyMode::Optional)?;
        Some(list.hypervisors.iter().map(|hv| hv.host.as_str().to_owned()).collect())
    };
    let Some(journal) = open_ledger_read_only(cli)? else {
        return Err(Error::input(InputProblem::new(&cli.global.state, "no journal here yet: no step has run")));
    };
    let settings = ReportSettings { hosts, since, until };
    let built = report::from_journal(&journal, &settings, hvmigrate::clock::now())?;
    let mut files = Vec::new();
    if let Some(dir) = &args.csv {
        files.extend(report::csv_files::write(&built, dir)?);
    }
    if let Some(file) = &args.html {
        report::html::write(&built, file)?;
        files.push(file.clone());
    }
    output.campaign_report(&built, &files);
    Ok(ExitCode::Success)
}

/// `hvmigrate serve` and its token commands.
fn serve(cli: &Cli, args: &ServeArgs, output: &Output) -> Result<ExitCode> {
    use hvmigrate::serve::{self, auth};
    fs_security::check_not_root(cli.global.allow_root)?;
    match &args.command {
        Some(ServeCommand::AddToken(add)) => {
            let role = match add.role {
                cli::TokenRole::Read => auth::Role::Read,
                cli::TokenRole::Operate => auth::Role::Operate,
            };
            let generated = auth::add_token(&add.tokens_file, &add.name, role, add.token.as_deref())?;
            output.token_added(&add.tokens_file, &add.name, role.as_str(), generated.as_deref());
        }
        Some(ServeCommand::RemoveToken(remove)) => {
            auth::remove_token(&remove.tokens_file, &remove.name)?;
            output.token_removed(&remove.tokens_file, &remove.name);
        }
        None => {
            let tokens_file = args.tokens_file.clone().ok_or_else(|| usage("serve needs --tokens-file"))?;
            let hypervisors = &cli.global.hypervisors_file;
            let settings = serve::ServeSettings {
                listen: args.listen,
                state: cli.global.state.clone(),
                tokens_file,
                protect_metrics: args.protect_metrics,
                tls: args.tls_cert.clone().zip(args.tls_key.clone()),
                // The default list is read only when it is there; one named with --hypervisors-file must be.
                hypervisors_file: hypervisors.exists().then(|| hypervisors.clone()),
            };
            runtime()?.block_on(serve::serve(&settings, |address, tls| output.serving(address, tls)))?;
        }
    }
    Ok(ExitCode::Success)
}

/// `hvmigrate scc collect|upload|check`.
fn scc(cli: &Cli, command: &SccCommand, paths: &InputPaths, output: &Output, run_log: &RunLog) -> Result<ExitCode> {
    let global = &cli.global;
    fs_security::check_not_root(global.allow_root)?;
    // Only collecting needs the list: an upload of saved results runs where the hosts are out of reach.
    let collect = |args: &SccCollectionArgs| -> Result<hvmigrate::scc::ResultsFile> {
        let (hypervisors, credentials) = check_config::load_inputs(paths, KeyMode::Optional)?;
        let only = args
            .only
            .iter()
            .map(|host| HostName::parse(host).map_err(|err| usage(&format!("--only: {err}"))))
            .collect::<Result<Vec<_>>>()?;
        let hosts = hvmigrate::scc::listed_hosts(&hypervisors, &only)?;
        run_log.open(&global.log_dir, &paths.hypervisors_file)?;
        let parallel = args.parallel.max(1);
        runtime()?.block_on(async {
            close_ssh_and_exit_on_ctrl_c();
            hvmigrate::scc::collect_listed(&credentials, &paths.creds_file, &hosts, args.group.as_deref(), parallel)
                .await
        })
    };
    let scc_client = |credentials: &hvmigrate::config::Credentials| {
        let config = credentials.scc.as_ref().ok_or_else(|| missing_section(paths, "scc"))?;
        Ok::<_, Error>(hvmigrate::clients::scc::SccClient::new(config)?)
    };
    let load_credentials = || {
        fs_security::check_secret_file(&paths.creds_file)?;
        hvmigrate::config::Credentials::load(&paths.creds_file)
    };
    match command {
        SccCommand::Check => {
            let client = scc_client(&load_credentials()?)?;
            runtime()?.block_on(client.check_credentials())?;
            output.scc_check();
            Ok(ExitCode::Success)
        }
        SccCommand::Collect(args) => {
            // Refused before the hosts are read, not after.
            if let Some(file) = &args.output_file {
                fs_security::refuse_symlink(file)?;
            }
            let results = collect(&args.collection)?;
            match &args.output_file {
                Some(file) => {
                    results.save(file)?;
                    output.scc_results(&results, Some(file));
                }
                None => output.scc_results(&results, None),
            }
            Ok(if results.hosts.iter().all(|host| host.valid) { ExitCode::Success } else { ExitCode::HostFailed })
        }
        SccCommand::Upload(args) => {
            let (results, credentials) = match &args.input {
                Some(file) => {
                    let credentials = load_credentials()?;
                    let results = hvmigrate::scc::ResultsFile::load(file)?;
                    run_log.open(&global.log_dir, file)?;
                    (results, credentials)
                }
                None => {
                    // Refuse a missing 'scc' section before reading every host.
                    let credentials = load_credentials()?;
                    scc_client(&credentials)?;
                    (collect(&args.collection)?, credentials)
                }
            };
            let client = scc_client(&credentials)?;
            let group = args.collection.group.as_deref();
            let report = runtime()?.block_on(hvmigrate::scc::upload_results(&client, &results.hosts, group));
            output.scc_upload(&report);
            Ok(if report.all_ok() { ExitCode::Success } else { ExitCode::HostFailed })
        }
    }
}

fn usage(message: &str) -> Error {
    Error::Usage(message.to_owned())
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
