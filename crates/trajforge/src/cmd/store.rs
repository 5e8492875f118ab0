//! `trajforge store copy`: move a run between a run folder and a PostgreSQL database.

use crate::args::StoreArgs;
use crate::error::CliError;

/// Options of `trajforge store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// `store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Copy a run, every row as stored: FROM and TO are each a run folder or a postgres:// URL
    /// (with --run NAME). The target must not hold a run yet.
    Copy(CopyArgs),
}

/// Options of `trajforge store copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The run to copy: a run folder or a postgres:// URL.
    pub from: String,
    /// Where to copy it: a new run folder or a postgres:// URL.
    pub to: String,
    /// The run's name in a postgres:// database (on either side).
    #[arg(long = "run", value_name = "NAME")]
    pub run_name: Option<String>,
}

/// Run `trajforge store`.
pub fn run(args: Args) -> Result<(), CliError> {
    let Command::Copy(c) = args.command;
    let side = |place: &str| {
        StoreArgs {
            store: is_url(place).then(|| place.to_string()),
            run_name: c.run_name.clone().filter(|_| is_url(place)),
        }
        .required(Some(std::path::Path::new(place)))
    };
    let (from, to) = (side(&c.from)?, side(&c.to)?);
    let source = trajforge_pipeline::prepare::open_existing_at(&from)?;
    let target = trajforge_store::Store::open_at(&to)?;
    let n = source.copy_into(&target)?;
    stderr_line!(
        "copied {from} to {to}: {} jobs, {} stage results, {} trajectories",
        n.jobs,
        n.stages,
        n.trajectories
    );
    Ok(())
}

fn is_url(place: &str) -> bool {
    place.starts_with("postgres://") || place.starts_with("postgresql://")
}
