//! The SSH server of one simulated host: public-key logins, session channels
//! with `exec` requests (several per connection, for ControlMaster), stdout,
//! stderr as extended data, the exit status, and standard input for
//! `sudo -S` and friends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::{keys, SshFaults, SshSettings};
use crate::shell::{self, Login, Machine};
use crate::world::World;

/// What every connection of every host shares.
pub struct Shared {
    pub world: World,
    pub faults: SshFaults,
    pub client_public: PublicKey,
    pub settings: SshSettings,
    pub seed: u64,
}

/// Accepts connections for one host until the lab stops. While the host
/// refuses connections, its port is closed (the client sees "Connection refused").
pub async fn serve_host(machine: Machine, listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let name = machine.name().to_owned();
    let Ok(address) = listener.local_addr() else { return };
    let mut listener = Some(listener);
    let mut changes = shared.faults.subscribe();
    loop {
        let refusing = shared.faults.get(&name).refuse_connections;
        if refusing {
            listener = None;
        } else if listener.is_none() {
            listener = rebind(address).await;
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            accepted = accept(listener.as_ref()) => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(connection(machine.clone(), stream, peer, shared.clone()));
                }
                Err(err) => {
                    warn!(host = %name, %err, "accepting an SSH connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Listens on the same port again after a "refuse connections" fault ends.
async fn rebind(address: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        match TcpListener::bind(address).await {
            Ok(listener) => return Some(listener),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    warn!(%address, "could not listen again on the simulated host's port");
    None
}

async fn connection(machine: Machine, stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    // A second handle on the socket lets a fault cut the connection mid-command.
    let cutter = match stream.into_std().and_then(|std| Ok((std.try_clone()?, std))) {
        Ok((cutter, std)) => match TcpStream::from_std(std) {
            Ok(stream) => Some((cutter, stream)),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let Some((cutter, stream)) = cutter else { return };
    let _ = stream.set_nodelay(true);
    let name = machine.name().to_owned();
    let generation = match &machine {
        Machine::Hypervisor(fqdn) => shared.world.lock().host(fqdn).map_or(0, |host| host.machine.host_key_generation),
        _ => 0,
    };
    let host_key = if shared.faults.get(&name).changed_host_key {
        keys::changed_host_key(shared.seed, &name)
    } else {
        keys::host_key_of_generation(shared.seed, &name, generation)
    };
    let version = {
        let mut world = shared.world.lock();
        *world.ssh_connections.entry(name.clone()).or_default() += 1;
        match &machine {
            Machine::Hypervisor(fqdn) if world.host(fqdn).is_some_and(|h| h.os.version_id.starts_with('8')) => "8.0",
            _ => "8.7",
        }
    };
    let config = russh::server::Config {
        server_id: SshId::Standard(format!("SSH-2.0-OpenSSH_{version}").into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: vec![host_key],
        // The lab answers at once; a real sshd's delays only slow tests.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        // Like sshd without ClientAliveInterval: idle multiplexed masters stay.
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    };
    let handler = Connection { machine, shared, user: None, channels: HashMap::new(), cutter: Arc::new(cutter) };
    debug!(host = %name, %peer, "SSH connection");
    match russh::server::run_stream(Arc::new(config), stream, handler).await {
        Ok(session) => {
            if let Err(err) = session.await {
                debug!(host = %name, %err, "SSH connection ended");
            }
        }
        Err(err) => debug!(host = %name, %err, "SSH handshake failed"),
    }
}

/// Standard input of one channel, as it arrives.
enum Input {
    Data(Vec<u8>),
    Eof,
}

struct Connection {
    machine: Machine,
    shared: Arc<Shared>,
    user: Option<String>,
    /// Where each open channel's standard input goes.
    channels: HashMap<ChannelId, mpsc::UnboundedSender<Input>>,
    cutter: Arc<std::net::TcpStream>,
}

impl Connection {
    fn allowed(&self, user: &str, key: &PublicKey) -> bool {
        let is_client = key.key_data() == self.shared.client_public.key_data();
        if user == self.shared.settings.username {
            return is_client;
        }
        if user != "root" {
            return false;
        }
        let world = self.shared.world.lock();
        let Machine::Hypervisor(fqdn) = &self.machine else { return false };
        world
            .host(fqdn)
            .is_some_and(|host| host.shell.root_authorized_keys.lines().any(|line| keys::line_matches(line, key)))
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        Ok(if self.allowed(user, offer.public_key) { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if self.allowed(user, key.public_key) {
            self.user = Some(user.to_owned());
            Ok(Auth::Accept)
        } else {
            debug!(host = %self.machine.name(), user, "public key refused");
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (sender, _) = mpsc::unbounded_channel();
        self.channels.insert(channel.id(), sender);
        reply.accept().await;
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(sender) = self.channels.get(&channel) {
            let _ = sender.send(Input::Data(data.to_vec()));
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(sender) = self.channels.get(&channel) {
            let _ = sender.send(Input::Eof);
        }
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        // No interactive shell: say so like a forced-command account would.
        session.channel_success(channel)?;
        let handle = session.handle();
        tokio::spawn(async move {
            let _ = handle
                .extended_data(channel, 1, &b"This simulated host runs commands only: ssh HOST 'command'\r\n"[..])
                .await;
            let _ = handle.exit_status_request(channel, 1).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.user.clone() else { return Err(russh::Error::NotAuthenticated) };
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        // Standard input from now on goes to this command.
        let (sender, receiver) = mpsc::unbounded_channel();
        self.channels.insert(channel, sender);
        let run = Command {
            machine: self.machine.clone(),
            shared: self.shared.clone(),
            login: Login { user, sudo_password: self.shared.settings.sudo_password.clone() },
            line,
            handle: session.handle(),
            channel,
            cutter: self.cutter.clone(),
        };
        tokio::spawn(run.run(receiver));
        Ok(())
    }
}

struct Command {
    machine: Machine,
    shared: Arc<Shared>,
    login: Login,
    line: String,
    handle: russh::server::Handle,
    channel: ChannelId,
    cutter: Arc<std::net::TcpStream>,
}

/// Whether a command line reads the client's standard input: `sudo -S`
/// (the password), or a `tee`, `cat` or shell fed from it.
fn reads_stdin(line: &str) -> bool {
    let line = shell::requested_command(line);
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut rest = &words[..];
    let mut password = false;
    if rest.first() == Some(&"sudo") {
        rest = &rest[1..];
        while let Some(flag) = rest.first().filter(|w| w.starts_with('-')) {
            password |= !flag.starts_with("--") && flag.contains('S');
            rest = &rest[if *flag == "-p" || *flag == "-u" { 2 } else { 1 }.min(rest.len())..];
        }
    }
    let filter = matches!(rest, ["tee", ..] | ["cat"] | ["sh"] | ["bash"] | ["sh", "-s", ..] | ["bash", "-s", ..]);
    password || (filter && !line.contains('|'))
}

impl Command {
    async fn run(self, mut input: mpsc::UnboundedReceiver<Input>) {
        let name = self.machine.name().to_owned();
        let mut changes = self.shared.faults.subscribe();
        while self.shared.faults.get(&name).hold {
            if changes.changed().await.is_err() {
                break;
            }
        }
        // Under way from here until its answer is sent (or its connection dropped).
        let _running = self.shared.faults.running(&name);
        let latency = self.shared.faults.latency(&name);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // Wait for standard input only when the command reads it, so that a
        // person typing `ssh host 'virsh list'` at a terminal is not kept waiting.
        let mut stdin = Vec::new();
        let wait = if reads_stdin(&self.line) { Duration::from_secs(10) } else { Duration::ZERO };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, input.recv()).await {
                Ok(Some(Input::Data(bytes))) => stdin.extend(bytes),
                Ok(Some(Input::Eof)) | Ok(None) | Err(_) => break,
            }
            if wait.is_zero() {
                break;
            }
        }
        while let Ok(Input::Data(bytes)) = input.try_recv() {
            stdin.extend(bytes);
        }
        let mirrored = match &self.shared.settings.nova_mirror {
            Some(mirror) if self.line.contains("virsh") => Some(mirror.0.servers().await),
            _ => None,
        };
        let mut outcome = {
            let mut world = self.shared.world.lock();
            match mirrored {
                // As libvirt says when it cannot answer; the command does nothing.
                Some(Err(err)) => shell::Outcome {
                    stdout: Vec::new(),
                    stderr: format!("error: failed to connect to the hypervisor: {err}\n").into_bytes(),
                    status: 1,
                    delay: Duration::ZERO,
                },
                Some(Ok(view)) => {
                    world.mirror_nova(view);
                    shell::run(&mut world, &self.machine, &self.login, &self.line, &stdin)
                }
                None => shell::run(&mut world, &self.machine, &self.login, &self.line, &stdin),
            }
        };
        if let Some(fault) = self.shared.faults.output(&name) {
            fault.apply(&self.line, &mut outcome);
        }
        debug!(host = %name, user = %self.login.user, command = %self.line, status = outcome.status, "ran");
        if !outcome.delay.is_zero() {
            tokio::time::sleep(outcome.delay).await;
        }
        if self.shared.faults.take_drop(&name, &self.line) {
            // The command has done its work; the client never learns how it ended.
            debug!(host = %name, "dropping the connection (fault)");
            let _ = self.cutter.shutdown(std::net::Shutdown::Both);
            return;
        }
        let channel = self.channel;
        if !outcome.stdout.is_empty() {
            let _ = self.handle.data(channel, outcome.stdout).await;
        }
        if !outcome.stderr.is_empty() {
            let _ = self.handle.extended_data(channel, 1, outcome.stderr).await;
        }
        let _ = self.handle.exit_status_request(channel, outcome.status).await;
        let _ = self.handle.eof(channel).await;
        let _ = self.handle.close(channel).await;
    }
}
