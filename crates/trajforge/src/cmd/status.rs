//! `trajforge status`: where a run stands, from its store.

use std::path::PathBuf;

use trajforge_pipeline::status::{self, Pricing};
use trajforge_store::Store;

use crate::error::CliError;

/// Options of `trajforge status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run folder given to `generate --out`.
    pub run_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// With --json: also list every function with its status and result.
    #[arg(long, requires = "json")]
    pub jobs: bool,
    /// Dollars per million prompt tokens [default: as given to generate].
    #[arg(long, value_name = "DOLLARS")]
    pub price_in: Option<f64>,
    /// Dollars per million completion tokens [default: as given to generate].
    #[arg(long, value_name = "DOLLARS")]
    pub price_out: Option<f64>,
    /// Dollars per GPU hour [default: as given to generate].
    #[arg(long, value_name = "DOLLARS")]
    pub gpu_hour_price: Option<f64>,
}

/// Run `trajforge status`.
pub fn run(args: Args) -> Result<(), CliError> {
    let store = Store::open_existing(&args.run_dir)
        .map_err(CliError::failure)?
        .ok_or_else(|| {
            CliError::input(format!(
                "{}: not a run folder (no trajforge.db)",
                args.run_dir.display()
            ))
            .hint("pass the folder given to `trajforge generate --out`")
        })?;
    let stored: Pricing = store
        .meta("pricing")
        .map_err(CliError::failure)?
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or_default();
    let pricing = Pricing {
        price_in: args.price_in.or(stored.price_in),
        price_out: args.price_out.or(stored.price_out),
        gpu_hour: args.gpu_hour_price.or(stored.gpu_hour),
    };
    let report = status::status(&store, pricing).map_err(CliError::failure)?;
    let threshold = store
        .meta("settings")
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["threshold"].as_f64());
    if args.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if args.jobs {
            let jobs: Vec<serde_json::Value> = store
                .jobs()
                .map_err(CliError::failure)?
                .into_iter()
                .map(|j| serde_json::json!({"id": j.id, "function": j.payload, "status": j.status, "result": j.result}))
                .collect();
            if let Some(map) = value.as_object_mut() {
                map.insert("jobs".into(), jobs.into());
            }
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", status::render(&report, threshold));
    }
    Ok(())
}
