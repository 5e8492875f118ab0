//! `trajforge functions`: the first stage of SVG, listing a repository's functions.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use trajforge_ingest::{Language, ScanOptions, ScanStats};

use crate::error::{self, CliError};

/// Options of `trajforge functions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Output: one JSON object per line per function, e.g.\n  \
{\"path\": \"pkg/mod.py\", \"name\": \"Class.method\", \"language\": \"python\", \"start_line\": 10, \"end_line\": 24, \"kind\": \"method\"}\n\
start_line is the first decorator/attribute line when there is one. A summary goes to stderr.")]
pub struct Args {
    /// The repository folder.
    pub repo: PathBuf,
    /// Print a deterministic random sample of N functions instead of all.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Seed of the sample's shuffle.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Only these languages (comma separated): python, rust, javascript, typescript, go, java, c, cpp.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub lang: Vec<String>,
    /// Keep test files, test folders and test functions (left out by default).
    #[arg(long)]
    pub include_tests: bool,
    /// Skip files larger than this (bytes, or with K/M/G).
    #[arg(long, default_value = "1M", value_name = "SIZE")]
    pub max_file_size: String,
    /// Parse every file again instead of using the content-hash cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Cache folder [default: $TRAJFORGE_CACHE_DIR, $XDG_CACHE_HOME/trajforge or ~/.cache/trajforge].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Follow symbolic links (loops are detected and skipped).
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Also read dependency, build, vendored and generated folders and files.
    #[arg(long)]
    pub no_default_excludes: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// How to print the summary on stderr.
    #[arg(long, value_enum, default_value_t = Summary::Text)]
    pub summary: Summary,
}

/// Summary styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Summary {
    /// Human-readable lines.
    Text,
    /// One JSON object.
    Json,
    /// Nothing.
    None,
}

/// Run `trajforge functions`.
pub fn run(args: Args) -> Result<(), CliError> {
    let started = Instant::now();
    // A scan touches memory a little at a time; huge pages only cost it zeroing.
    trajforge_ingest::prefer_small_pages();
    let languages =
        Language::parse_list(&args.lang).map_err(|e| CliError::input(format!("--lang: {e}")))?;
    let max_file_size = super::parse_size(&args.max_file_size)
        .map_err(|e| CliError::input(format!("--max-file-size: {e}")))?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(super::default_cache_dir)
    };
    let options = ScanOptions {
        include_tests: args.include_tests,
        languages,
        max_file_size,
        cache_dir,
        threads: args.threads,
        follow_symlinks: args.follow_symlinks,
        default_excludes: !args.no_default_excludes,
    };
    let mut scan = trajforge_ingest::scan(&args.repo, &options)?;
    if let Some(n) = args.sample {
        trajforge_ingest::sample(&mut scan.functions, n, args.seed);
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for function in &scan.functions {
        serde_json::to_writer(&mut out, function).map_err(|e| error::output(e.into()))?;
        out.write_all(b"\n").map_err(error::output)?;
    }
    out.flush().map_err(error::output)?;
    drop(out);

    let elapsed = started.elapsed().as_secs_f64();
    match args.summary {
        Summary::None => {}
        Summary::Json => {
            let mut value = serde_json::to_value(&scan.stats).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("seconds".into(), elapsed.into());
                map.insert("printed".into(), scan.functions.len().into());
            }
            stderr_line!("{value}");
        }
        Summary::Text => stderr_text!(
            "{}",
            summary_text(&scan.stats, scan.functions.len(), args.sample, elapsed)
        ),
    }
    Ok(())
}

/// The human summary printed on stderr.
pub fn summary_text(
    stats: &ScanStats,
    printed: usize,
    sample: Option<usize>,
    seconds: f64,
) -> String {
    let mut s = String::new();
    let per_lang: Vec<String> = stats
        .files_by_language
        .iter()
        .map(|(lang, files)| {
            let functions = stats.functions_by_language.get(lang).copied().unwrap_or(0);
            format!("{lang} {files} files/{functions} functions")
        })
        .collect();
    s.push_str(&format!(
        "scanned {} files, {} lines: {} functions ({}) in {:.2}s",
        stats.files(),
        stats.lines,
        stats.functions(),
        if per_lang.is_empty() {
            "no source files of a supported language".to_string()
        } else {
            per_lang.join(", ")
        },
        seconds
    ));
    if stats.cache_hits > 0 {
        s.push_str(&format!(", {} files from cache", stats.cache_hits));
    }
    s.push('\n');
    if let Some(n) = sample {
        s.push_str(&format!("printed a sample of {printed} (asked for {n})\n"));
    }
    if !stats.skipped.is_empty() {
        let parts: Vec<String> = stats
            .skipped
            .iter()
            .map(|(reason, n)| format!("{} ({n})", reason.label()))
            .collect();
        s.push_str(&format!("skipped files: {}\n", parts.join(", ")));
    }
    if stats.test_functions_excluded > 0 {
        s.push_str(&format!(
            "left out {} test functions inside non-test files (e.g. #[test], #[cfg(test)] modules)\n",
            stats.test_functions_excluded
        ));
    }
    if stats
        .skipped
        .contains_key(&trajforge_ingest::SkipReason::Test)
        || stats.test_functions_excluded > 0
    {
        s.push_str("  (tests are left out by default; --include-tests keeps them)\n");
    }
    if stats.syntax_error_files > 0 {
        s.push_str(&format!(
            "note: {} files have syntax errors; the functions tree-sitter recovered from them are listed\n",
            stats.syntax_error_files
        ));
    }
    if let Some(warning) = &stats.cache_warning {
        s.push_str(&format!(
            "warning: {warning} (results are correct, only slower)\n"
        ));
    }
    s
}
