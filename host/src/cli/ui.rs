//! `wfhost ui`: the dashboard of `wfhost serve` over a local database, for
//! the one who runs it: every tenant's workflows, with a key made for this
//! run only and handed to the browser in the printed address.

use std::time::Duration;

use clap::Args;
use wfhost::service::Tenants;

use super::serve::{Hosting, header_timeout, host_over_http};
use super::{Finished, RunDbArgs};

#[derive(Args)]
pub struct UiArgs {
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: String,
    /// Seconds a connection may take to send a request's head.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = header_timeout)]
    header_timeout: Duration,
    #[command(flatten)]
    db: RunDbArgs,
}

/// A key nobody can guess: 128 bits from the system's random source, in hex.
pub(super) fn one_time_key() -> anyhow::Result<String> {
    use std::io::Read;
    let mut key = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key.iter().map(|byte| format!("{byte:02x}")).collect())
}

pub async fn ui(args: UiArgs) -> anyhow::Result<Finished> {
    let key = one_time_key()?;
    let options = Hosting {
        listen: args.listen,
        header_timeout: args.header_timeout,
        name: "wfhost ui",
        resume_cut_off: false,
        policy: None,
    };
    host_over_http(Tenants::local(&key), args.db, options, |address, _| {
        // The key rides in the fragment, which the browser never sends;
        // the page moves it to the tab's session storage at once.
        println!("http://{address}/#key={key}");
        eprintln!("wfhost ui: open the address above; Ctrl-C stops");
    })
    .await
}
