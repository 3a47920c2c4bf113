//! `wfhost rm ID` and `wfhost purge`, and the ages they and `--retention`
//! take (`7d`, `12h`, `30m`, `45s`).

use std::time::Duration;

use clap::Args;
use wfhost::records::WorkflowStatus;
use wfhost::text::thousands;
use wfhost::{Purge, RunIdentity};

use super::{DbArgs, Finished, TenantArg};

/// The longest age accepted: a hundred years.
const MAX_AGE_SECONDS: u64 = 100 * 366 * 86_400;

/// An age: a whole number and a unit, `s`, `m`, `h`, `d` or `w`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{text}`: expected a number and s, m, h, d or w (`7d`)"
            ));
        }
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .filter(|&seconds| seconds <= MAX_AGE_SECONDS)
        .ok_or_else(|| format!("`{text}`: expected a whole number up to 100 years"))?;
    Ok(Duration::from_secs(seconds))
}

#[derive(Args)]
pub struct RmArgs {
    /// The workflow to remove, with every record of it.
    id: String,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct PurgeArgs {
    /// Only workflows whose last change is at least this old (`7d`, `12h`,
    /// `30m`).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<Duration>,
    /// Only workflows with this status: succeeded, failed, cancelled or
    /// cut_off [default: every one that ended]
    #[arg(long, value_parser = purgeable)]
    status: Option<WorkflowStatus>,
    /// Only this tenant's workflows.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

fn purgeable(text: &str) -> Result<WorkflowStatus, String> {
    match text.parse()? {
        WorkflowStatus::Running => Err("a running workflow is never purged".into()),
        status => Ok(status),
    }
}

/// `wfhost rm ID`.
pub async fn rm(args: RmArgs) -> anyhow::Result<Finished> {
    let host = args.db.host_of_existing()?;
    let row = host
        .remove(&RunIdentity::new(&args.tenant.tenant, &args.id))
        .await?;
    eprintln!("removed workflow {} ({})", row.id, row.status.as_str());
    Ok(Finished::Succeeded)
}

/// `wfhost purge`.
pub async fn purge(args: PurgeArgs) -> anyhow::Result<Finished> {
    let host = args.db.host_of_existing()?;
    let mut purge = Purge::new();
    purge.older_than = args.older_than;
    purge.status = args.status;
    purge.tenant = args.tenant;
    let removed = host.purge(&purge).await?;
    eprintln!(
        "removed {} workflow{}",
        thousands(removed.len() as u64),
        if removed.len() == 1 { "" } else { "s" }
    );
    Ok(Finished::Succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_a_number_and_a_unit() {
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for wrong in [
            "",
            "7",
            "d",
            "7 d",
            "1.5h",
            "-1d",
            "7y",
            "99999999999999999999d",
        ] {
            assert!(parse_age(wrong).is_err(), "{wrong}");
        }
    }
}
