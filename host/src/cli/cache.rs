//! `wfhost cache`: the compiled-component cache, and the sizes its cap
//! takes (`512M`, `2G`).

use clap::{Args, Subcommand};
use wfhost::runtime::ComponentCache;

use super::Finished;

/// The largest cap accepted: a pebibyte.
const MAX_CAP: u64 = 1 << 50;

/// A size in bytes: a whole number, optionally followed by `K`, `M`, `G`
/// or `T` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim_end_matches(['B', 'b', 'i']) {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => {
            return Err(format!(
                "`{text}`: expected a number of bytes, K, M, G or T (`2G`)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&bytes| bytes <= MAX_CAP)
        .ok_or_else(|| format!("`{text}`: expected a whole number up to 1 PiB"))
}

/// A size for people: `37.9 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Remove the compiled components used longest ago until the rest fit
    /// the cap (and what crashed writers left).
    Prune {
        /// Keep at most this much (`500M`, `2G`, `0` for nothing)
        /// [default: the cache's cap, `$WFHOST_CACHE_MAX` or 2G].
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Print where the cache is, its cap and what it holds.
    Info,
}

/// Runs a `wfhost cache` command.
pub fn cache(args: CacheArgs) -> anyhow::Result<Finished> {
    let Some(cache) = super::execute::component_cache()? else {
        anyhow::bail!(
            "there is no component cache: no $WFHOST_CACHE_DIR, $XDG_CACHE_HOME or $HOME"
        );
    };
    match args.command {
        CacheCommand::Prune { max_size } => {
            let pruned = cache.prune(max_size.unwrap_or(cache.max_bytes()))?;
            println!(
                "removed {} compiled component{} ({}); kept {} ({}) in {}",
                pruned.removed,
                if pruned.removed == 1 { "" } else { "s" },
                human(pruned.removed_bytes),
                pruned.kept,
                human(pruned.kept_bytes),
                cache.dir().display()
            );
        }
        CacheCommand::Info => info(&cache)?,
    }
    Ok(Finished::Succeeded)
}

fn info(cache: &ComponentCache) -> anyhow::Result<()> {
    // Pruning to no cap removes nothing but what crashed writers left,
    // and counts the rest.
    let held = cache.prune(u64::MAX)?;
    println!("directory  {}", cache.dir().display());
    println!("cap        {}", human(cache.max_bytes()));
    println!("entries    {}", held.kept);
    println!("size       {}", human(held.kept_bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_and_refuse_the_rest() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("3k"), Ok(3 << 10));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(38 << 20), "38.0 MiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
