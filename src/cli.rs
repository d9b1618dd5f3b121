//! Command-line arguments. These types stay here: `main` turns them into the
//! library's plain settings.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use hvmigrate::manual::ManPage;

const STEPS_HELP: &str = "\
The workflow, one step at a time over every host of the list:
  setup           give the operator's SSH key root access on each hypervisor
  pre-drain       check the OS and NetBox, update qemu-kvm, disable the host in Nova
  drain           live- or cold-migrate every VM off the host, with capacity checks
  pre-reinstall   check it is empty, silence alerts, NetBox planned, Aquilon re-import, PXE switch
  post-reinstall  check the new OS and EFI, apply model-specific disk fixes, NetBox active
  adoption        Kayobe configure and deploy, re-enable in Nova, expire silences, report to SCC
  noops           preflight: reach every service and host, change nothing

Every step records each action in the journal and on the host's Jira ticket, and is safe to repeat.

Exit codes: 0 success; 1 at least one host failed or was blocked; 2 bad usage or input, nothing changed.";

/// `hvmigrate --version`: the version and the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("HVMIGRATE_BUILD_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(name = "hvmigrate", version = VERSION, about = "Take a fleet of OpenStack hypervisors through an OS migration, safely and in parallel", after_long_help = STEPS_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The hypervisors to work on: one '<fqdn> <JIRA-KEY>' per line.
    #[arg(long, global = true, default_value = "hypervisors.txt", value_name = "FILE")]
    pub hypervisors_file: PathBuf,
    /// Service URLs and secrets (YAML, mode 0600).
    #[arg(long, global = true, default_value = "credentials.yaml", value_name = "FILE")]
    pub creds_file: PathBuf,
    /// The journal of every run: a SQLite file, or a team's PostgreSQL ledger as
    /// `postgres://user@host[:port]/db[?sslmode=...]` (the password from PGPASSWORD,
    /// ~/.pgpass or state.password in the credentials file, never in the URL).
    #[arg(long, global = true, default_value = "state/hvmigrate.db", value_name = "FILE|URL")]
    pub state: PathBuf,
    /// Folder of the run logs.
    #[arg(long, global = true, default_value = "logs", value_name = "DIR")]
    pub log_dir: PathBuf,
    /// More detail on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Run even as root (not recommended).
    #[arg(long, global = true)]
    pub allow_root: bool,
    /// Format of what is printed on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the hypervisors and credentials files and show what they configure.
    CheckConfig(CheckConfigArgs),
    /// Create a Jira ticket for each hypervisor of the list that has no key, and write the keys into the list.
    CreateTickets(CreateTicketsArgs),
    /// Add the same comment to every ticket of the list, once (a re-run does not repeat it).
    Comment(CommentArgs),
    /// Run one step of the workflow over the hosts of the list (see the steps below).
    Run(RunArgs),
    /// Where every host stands, from the journal.
    Status(StatusArgs),
    /// Every host's identity record (canonical facts) and its history, from the journal; duplicates reported.
    Inventory(InventoryArgs),
    /// Campaign report from the journal alone: OS over time, burn-down and forecast, where the time goes,
    /// what holds it up.
    Report(ReportArgs),
    /// The whole campaign on a built-in simulated site (in-process, on loopback, in a temporary folder).
    Demo(DemoArgs),
    /// The simulated site: serve it for hands-on use, or show where it stands.
    #[command(subcommand)]
    Lab(LabCommand),
    /// SUSE Customer Center: collect the hypervisors' details through libvirt, upload them, check the credentials.
    #[command(subcommand)]
    Scc(SccCommand),
    /// The VMs of one hypervisor of the list, as libvirt and their guest agents see them; power and autostart.
    #[command(subcommand)]
    Vm(VmCommand),
    /// The journal itself: copy a campaign from one ledger into another (a file or a postgres:// URL).
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Serve the dashboard, the REST API and Prometheus metrics over the ledger (read-only); manage its tokens.
    Serve(ServeArgs),
    /// Print the shell completion script for bash, zsh or fish (the package installs them).
    Completions(CompletionsArgs),
    /// Print the manual page hvmigrate(1), or write one page per command into --dir.
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Bring a campaign into an empty ledger (e.g. from state/hvmigrate.db into the team's PostgreSQL),
    /// once: every row kept, the rows of each table counted on both sides.
    Copy {
        /// The ledger the campaign is in: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "FILE|URL")]
        from: std::path::PathBuf,
        /// The ledger to fill: empty, or holding this campaign already (then nothing is written).
        #[arg(long, value_name = "FILE|URL")]
        to: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The bearer tokens (names, roles and hashes; mode 0600): see `serve add-token`.
    #[arg(long, value_name = "FILE", required = true)]
    pub tokens_file: Option<PathBuf>,
    /// /metrics needs a token too.
    #[arg(long)]
    pub protect_metrics: bool,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM, mode 0600).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Add a token to the tokens file (made 0600 if new); without --token one is generated and printed once.
    AddToken(AddTokenArgs),
    /// Remove a token from the tokens file; a running server stops taking it at once.
    RemoveToken(RemoveTokenArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TokenRole {
    /// Reads the dashboard, the API and the metrics.
    Read,
    /// Also reads the raw output of the commands run on the hosts.
    Operate,
}

#[derive(Debug, Args)]
pub struct AddTokenArgs {
    #[arg(long, value_name = "FILE")]
    pub tokens_file: PathBuf,
    /// Who holds the token (letters, digits, . _ @ -).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    #[arg(long, value_enum)]
    pub role: TokenRole,
    /// Use this token (at least 32 characters) instead of generating one.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct RemoveTokenArgs {
    #[arg(long, value_name = "FILE")]
    pub tokens_file: PathBuf,
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write hvmigrate.1 and one page per command (hvmigrate-run.1, hvmigrate-lab-serve.1, ...)
    /// into this folder (created if missing) instead of printing hvmigrate(1).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script of `shell` for every command and flag above.
pub fn completion_script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hvmigrate", &mut script);
    script
}

/// hvmigrate(1) alone, or with one page per command and sub-command, named
/// as man(1) finds them (`man hvmigrate-lab-serve`).
pub fn manual_pages(with_commands: bool) -> Vec<ManPage> {
    let mut command = Cli::command().disable_help_subcommand(true);
    // Building gives sub-commands their display names ("hvmigrate-lab-serve").
    command.build();
    if !with_commands {
        return vec![render_page(command)];
    }
    let mut pages = Vec::new();
    command_pages(command, &mut pages);
    pages
}

/// The page of `command`, then those of its sub-commands, depth first.
fn command_pages(command: clap::Command, pages: &mut Vec<ManPage>) {
    let subs: Vec<clap::Command> = command.get_subcommands().filter(|sub| !sub.is_hide_set()).cloned().collect();
    pages.push(render_page(command));
    for sub in subs {
        command_pages(sub, pages);
    }
}

fn render_page(command: clap::Command) -> ManPage {
    let man = clap_mangen::Man::new(command);
    let mut roff = Vec::new();
    man.render(&mut roff).expect("rendering into memory cannot fail");
    ManPage { file_name: man.get_filename(), roff }
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Every libvirt domain: state, vCPUs, memory, autostart, guest agent, Nova instance and status; orphans marked.
    List { host: String },
    /// One domain's devices from its XML (disks, NICs, host devices, pinning, NUMA) and what they mean for migration.
    Info { host: String, domain: String },
    /// CPU, memory, disk and network figures from `virsh domstats`, per domain and summed.
    Stats { host: String, domain: Option<String> },
    /// Run a command in the guest through the QEMU guest agent; exits with the command's exit code.
    Exec(VmExecArgs),
    /// Power a domain: a Nova instance through Nova (os-start, os-stop, reboot), a domain Nova does not know through libvirt.
    Power {
        host: String,
        domain: String,
        #[arg(value_enum)]
        action: VmPowerAction,
    },
    /// Start a domain Nova does not know when the host boots, or not (Nova starts its own instances).
    Autostart {
        host: String,
        domain: String,
        #[arg(value_enum, value_name = "on|off")]
        setting: OnOff,
    },
}

#[derive(Debug, Args)]
pub struct VmExecArgs {
    pub host: String,
    pub domain: String,
    /// Give this file's content to the command's standard input.
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<PathBuf>,
    /// Stop waiting after S seconds (the command may go on in the guest).
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub timeout: u64,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VmPowerAction {
    Start,
    Shutdown,
    Reboot,
    Stop,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum SccCommand {
    /// Collect every listed host's details over SSH (virsh) and print them, or save them with --output-file.
    Collect(SccCollectArgs),
    /// Upload saved results (--input) or freshly collected ones: one request per group.
    Upload(SccUploadArgs),
    /// Check the SCC credentials.
    Check,
}

#[derive(Debug, Args)]
pub struct SccCollectArgs {
    /// Save the results here (YAML, mode 0600) instead of printing them; upload them later with --input.
    /// (`--output` is the global output format.)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    #[command(flatten)]
    pub collection: SccCollectionArgs,
}

#[derive(Debug, Args)]
pub struct SccUploadArgs {
    /// Upload these saved results instead of collecting now (the hypervisors file is then not needed).
    #[arg(short = 'i', long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub collection: SccCollectionArgs,
}

#[derive(Debug, Args)]
pub struct SccCollectionArgs {
    /// The SCC group of the hosts (default: workflow.scc_group, else the hosts' DNS sub-domain).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Hosts read at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Only this host of the list (repeatable).
    #[arg(long, value_name = "HOST")]
    pub only: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start the simulated site on loopback, write a ready credentials.yaml and hypervisors.txt, serve until Ctrl-C.
    Serve(LabServeArgs),
    /// Show the running site's world: per host NetBox, Nova, VMs, Jira and silences; SCC uploads (read-only).
    Show(LabShowArgs),
    /// Lay down a long campaign in the journal (--state): the real engine over a simulated site with a
    /// simulated clock, steps spread over weeks, operators' waits, failures and retries.
    History(LabHistoryArgs),
    /// Reinstall a host of the running site over PXE, as an operator would after pre-reinstall
    /// (target OS, blank extra disks, no root key); only for a host Aquilon switched to install.
    Reinstall(LabReinstallArgs),
}

#[derive(Debug, Args)]
pub struct LabHistoryArgs {
    /// Hypervisors of the simulated campaign.
    #[arg(long, default_value_t = 200)]
    pub hosts: usize,
    /// Weeks the campaign spans (it ends about now).
    #[arg(long, default_value_t = 6)]
    pub weeks: u32,
    /// Seed of the simulated site and of the operators' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the site files and logs here instead of a new temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LabReinstallArgs {
    /// The host to reinstall.
    pub host: String,
    /// Simulate a DNS or PXE mix-up: another machine (other system UUID, serial and MACs) answers afterwards.
    #[arg(long)]
    pub wrong_machine: bool,
    #[command(flatten)]
    pub lab: LabShowArgs,
}

#[derive(Debug, Args)]
pub struct LabServeArgs {
    /// Hypervisors of the simulated campaign.
    #[arg(long, default_value_t = 12)]
    pub hosts: usize,
    /// Seed of the simulated site; the same seed gives the same site.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the site files here instead of a new temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Listen on consecutive ports from P (jira, netbox, keystone, nova, alertmanager, scc) instead of random ones.
    #[arg(long, value_name = "P")]
    pub port_base: Option<u16>,
    /// Add this latency to every HTTP request of every service (benchmarks).
    #[arg(long, value_name = "MS")]
    pub http_latency_ms: Option<u64>,
    /// Add this latency before every command on every simulated host over SSH (benchmarks).
    #[arg(long, value_name = "MS")]
    pub ssh_latency_ms: Option<u64>,
    /// Every campaign host standard: without the demo's deliberate oddities (benchmarks).
    #[arg(long)]
    pub no_oddities: bool,
    /// Each host's `virsh` shows the servers a real Nova places on it: Keystone's URL; the admin
    /// account from OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME (as the openstack CLI takes them).
    #[arg(long, value_name = "KEYSTONE_URL")]
    pub mirror_nova: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct LabShowArgs {
    /// The folder `lab serve` wrote (its lab.json names the control URL).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The lab's control URL.
    #[arg(long, value_name = "CONTROL_URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Hypervisors of the simulated campaign.
    #[arg(long, default_value_t = 12)]
    pub hosts: usize,
    /// Seed of the simulated site; the same seed gives the same site.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the site files, journal and logs here instead of a new temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The step to run: setup, pre-drain, drain, pre-reinstall, post-reinstall, adoption or noops.
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// Work on N hosts at once (all of them when N is left out); without it, one at a time.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "0")]
    pub parallel: Option<usize>,
    /// Only this host of the list (repeatable).
    #[arg(long, value_name = "HOST")]
    pub only: Vec<String>,
    /// Only read: print the plan per host (would do / already done / would block); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run even where the previous step has not succeeded (recorded, and said on the ticket).
    /// It passes the step gate only: it repeats no once-per-campaign action.
    #[arg(long)]
    pub force: bool,
    /// Go back: run the step on hosts already past it, and with ACTION repeat that
    /// once-per-campaign action (aquilon-reimport, mellanox-uefi-pxe). Needs --only and a
    /// confirmation; recorded, and said on the ticket.
    #[arg(long, value_name = "ACTION", num_args = 0..=1, default_missing_value = "")]
    pub redo: Option<String>,
    /// Do not ask for confirmation before a destructive step.
    #[arg(long)]
    pub yes: bool,
    /// Take up to N hosts of the list, in order, that the step may run on and that no
    /// other run holds (several operators sharing one --state each claim their own).
    #[arg(long, value_name = "N", conflicts_with_all = ["dry_run", "redo"], value_parser = clap::value_parser!(usize))]
    pub claim: Option<usize>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show every recorded action of this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// List the runs under way on the ledger: who, where, which step, the hosts they hold, since when.
    #[arg(long, conflicts_with = "host")]
    pub runs: bool,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Show this host only.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Start of the window: a date (2026-03-01, midnight UTC) or a time stamp; default the first record.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// End of the window (same forms); default now.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Every host of the journal, not only those of the list.
    #[arg(long)]
    pub all: bool,
    /// Also write one CSV file per table into this folder.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// Also write one self-contained HTML page with the tables and charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Also check the credentials against every configured service (exit 2 if one fails).
    #[arg(long)]
    pub reach: bool,
}

#[derive(Debug, Args)]
pub struct CreateTicketsArgs {
    /// Show what would be done; create nothing, rewrite nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The comment's text (blank lines separate paragraphs).
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub text: Option<String>,
    /// Read the comment's text from this file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Post as an internal comment (Jira Service Management).
    #[arg(long)]
    pub internal: bool,
    /// Show which tickets would get the comment; post nothing.
    #[arg(long)]
    pub dry_run: bool,
}
