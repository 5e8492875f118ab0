//! `trajforge status`: where a run stands, from its store.

use std::path::PathBuf;

use trajforge_pipeline::prepare;
use trajforge_pipeline::status::{self, Pricing};

use crate::args::{PriceArgs, StoreArgs};
use crate::error::CliError;

/// Options of `trajforge status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Prices not given here are those the run was started with.")]
pub struct Args {
    /// The run folder given to `generate --out` (or --store URL --run NAME).
    pub run_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// With --json: also list every function with its status and result.
    #[arg(long, requires = "json")]
    pub jobs: bool,
    #[command(flatten)]
    pub prices: PriceArgs,
}

/// Run `trajforge status`.
pub fn run(args: Args) -> Result<(), CliError> {
    let location = args.store.required(args.run_dir.as_deref())?;
    let store = prepare::open_existing_at(&location)?;
    let stored = prepare::stored_pricing(&store)?;
    let pricing = Pricing {
        price_in: args.prices.price_in.or(stored.price_in),
        price_out: args.prices.price_out.or(stored.price_out),
        gpu_hour: args.prices.gpu_hour_price.or(stored.gpu_hour),
    };
    let report = status::status(&store, pricing)?;
    let threshold = prepare::stored_threshold(&store);
    if args.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if store.is_shared()
            && let Some(map) = value.as_object_mut()
        {
            let workers = status::workers(&store)?;
            map.insert(
                "workers".into(),
                serde_json::to_value(workers).unwrap_or_default(),
            );
            map.insert(
                "throughput".into(),
                serde_json::to_value(status::throughput(&store)?).unwrap_or_default(),
            );
        }
        if args.jobs {
            let jobs: Vec<serde_json::Value> = store
                .jobs()
                ?
                .into_iter()
                .map(|j| serde_json::json!({"id": j.id, "function": j.payload, "status": j.status, "result": j.result}))
                .collect();
            if let Some(map) = value.as_object_mut() {
                map.insert("jobs".into(), jobs.into());
            }
        }
        crate::error::print_json(&value)
    } else {
        let mut text = status::render(&report, threshold);
        if store.is_shared() {
            text.push_str(&status::render_workers(&status::workers(&store)?));
            text.push_str(&status::render_throughput(&status::throughput(&store)?));
        }
        crate::error::print(&text)
    }
}
