//! `wfhost serve --tenants FILE`: the multi-tenant service.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{SignalKind, signal};
use wfhost::executor::cores;
use wfhost::schedule::{Scheduler, SystemClock};
use wfhost::service::{Service, Tenants, http};

use super::execute::cached_runtime;
use super::{Finished, RunDbArgs};

/// How long a stop waits for the steps under way.
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct ServeArgs {
    /// The tenant policy file (TOML): keys, allowed plugins, ceilings.
    #[arg(long, value_name = "FILE")]
    tenants: PathBuf,
    /// The address to listen on (port 0 picks a free one; the address is
    /// printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Seconds a connection may take to send a request's head, or stay
    /// idle between requests, before it is closed.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = header_timeout)]
    header_timeout: Duration,
    #[command(flatten)]
    db: RunDbArgs,
}

pub fn header_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err("expected a number of seconds above 0, at most 3600".into()),
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<Finished> {
    let tenants = Tenants::load(&args.tenants)?;
    let options = Hosting {
        listen: args.listen,
        header_timeout: args.header_timeout,
        name: "wfhost serve",
        resume_cut_off: true,
        policy: Some(args.tenants),
    };
    host_over_http(tenants, args.db, options, |address, resumed| {
        eprintln!(
            "wfhost serve: listening on http://{address}; resumed {resumed} cut-off workflows"
        );
    })
    .await
}

/// How [`host_over_http`] runs.
pub struct Hosting {
    /// The address to listen on.
    pub listen: String,
    /// How long a connection may take to send a request's head.
    pub header_timeout: Duration,
    /// The command's name, in what it prints.
    pub name: &'static str,
    /// Whether to resume the workflows a stop or a crash cut off.
    pub resume_cut_off: bool,
    /// The policy file the tenants came from: read again on SIGHUP.
    pub policy: Option<PathBuf>,
}

/// Serves `tenants`' workflows of the database `db` names over HTTP until
/// SIGTERM or Ctrl-C, then stops gracefully. `announce` is told the
/// address listened on and how many workflows were resumed.
pub async fn host_over_http(
    tenants: Tenants,
    db: RunDbArgs,
    options: Hosting,
    announce: impl FnOnce(std::net::SocketAddr, usize),
) -> anyhow::Result<Finished> {
    let name = options.name;
    let store = db.open()?;
    // Guest code runs on threads of its own, one per core, so that a
    // tenant's flood of busy steps never holds up requests, commits, or
    // another tenant's turn.
    let attempt_pool = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .thread_name("wfhost-attempt")
        .enable_all()
        .build()
        .context("cannot start the attempt threads")?;
    let service = Service::new(
        store,
        cached_runtime()?,
        tenants,
        attempt_pool.handle().clone(),
    );
    let listener = listen(&options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr()?;
    let resumed = match options.resume_cut_off {
        true => service.resume_cut_off().await?,
        false => 0,
    };
    announce(address, resumed);
    let expiring = {
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            // The retention's own clock (in the database) says when
            // removing is due; looking every minute costs a read.
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                db.expire(service.host()).await;
            }
        })
    };
    // Every long-running process on the database fires its schedules.
    let scheduling = {
        let launcher: Arc<dyn wfhost::schedule::Launcher> = Arc::clone(&service) as _;
        let scheduler = Scheduler::new(launcher, Arc::new(SystemClock));
        tokio::spawn(async move {
            if let Err(err) = scheduler.run().await {
                tracing::error!("the scheduler stopped: {err}");
            }
        })
    };
    // SIGHUP reads the policy again; a file that does not read leaves the
    // policy in use as it is.
    let reloading = options.policy.map(|file| {
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::error!("SIGHUP cannot be caught: the tenant policy is read only at start");
                return;
            };
            while hangups.recv().await.is_some() {
                let shown = file.display().to_string();
                match Tenants::load(&file) {
                    Ok(tenants) => {
                        let count = tenants.all().count();
                        service.replace_tenants(tenants);
                        tracing::info!(file = %shown, tenants = count, "the tenant policy was read again");
                    }
                    Err(err) => tracing::error!(
                        file = %shown,
                        error = %err,
                        "the tenant policy was not read again; the one in use stays"
                    ),
                }
            }
        })
    });
    // No step starts from the signal on, while the requests under way are
    // answered.
    let stopping = {
        let service = Arc::clone(&service);
        async move {
            stop_requested().await;
            service.stop_starting();
        }
    };
    http::serve(
        Arc::clone(&service),
        listener,
        options.header_timeout,
        stopping,
    )
    .await?;
    expiring.abort();
    scheduling.abort();
    if let Some(reloading) = reloading {
        reloading.abort();
    }
    // No step starts from here; those under way finish and are committed.
    // Workflows stay on record as running: the next start resumes them.
    let cut_off = service.stop(STOP_GRACE).await;
    // Dropping a runtime may not block inside another one.
    attempt_pool.shutdown_background();
    if cut_off > 0 {
        eprintln!("{name}: stopped; {cut_off} steps did not finish in time and will run again");
    } else {
        eprintln!("{name}: stopped");
    }
    Ok(Finished::Succeeded)
}

/// Connections the system may hold for the service before it accepts
/// them: a burst of clients is queued, not reset.
const BACKLOG: u32 = 4096;

/// A listener on `address` (a host name or an IP, and a port).
async fn listen(address: &str) -> std::io::Result<TcpListener> {
    let Some(address) = tokio::net::lookup_host(address).await?.next() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the name resolves to no address",
        ));
    };
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn stop_requested() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signals) => {
                signals.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
