//! The `finagent` binary: clap types and one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for a command's output on stdout: when the reader has gone (`finagent ... | head`)
/// the process ends as a command-line tool killed by SIGPIPE would (status 141), instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            crate::stdout_failed(error);
        }
    }};
}

mod cmd;

/// Ends the process after a failed write to stdout (see `outln!`).
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: cannot write to standard output: {error}");
    std::process::exit(1);
}

/// Answers questions about public XBRL filings with a small local LLM, and finetunes, evaluates
/// and quantizes such LLMs for finance (FinLoRA's QLoRA recipe).
#[derive(Debug, Parser)]
#[command(name = "finagent", version, long_about = None)]
struct Cli {
    /// Where finagent keeps its index, models, downloads and cache.
    #[arg(long, global = true, env = "FINAGENT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Index filing folders and companyfacts JSON files for `ask`.
    Index(cmd::index::Args),
    /// Answer a question about a company's filings, with provenance.
    Ask(cmd::ask::Args),
    /// Download 10-K/10-Q XBRL filings and companyfacts from EDGAR (or copy them from the mirror).
    Fetch(cmd::fetch::Args),
    /// Download the default model (SmolLM2-135M-Instruct, GGUF) if it is not there yet.
    FetchModel(cmd::fetch_model::Args),
    /// List, inspect and count tasks; generate XBRL questions from filings.
    Datasets(cmd::datasets::Args),
    /// Finetune LoRA adapters on a mixture of financial tasks over a 4/8/32-bit base.
    Train(cmd::train::Args),
    /// Speed and memory measurements as JSON lines: quantized matmul, training, inference.
    Bench(cmd::bench::Args),
    /// Estimate training and inference memory of LoRA over a 4/8/16-bit base, per component.
    Estimate(cmd::estimate::Args),
    /// Evaluate the base model or base + adapters on task test sets (FinLoRA and strict metrics).
    Eval(cmd::eval::Args),
    /// Tables (paper Table 3, Tables 4/5) and bar charts over `finagent eval` runs.
    Report(cmd::report::Args),
    /// Write a model as the bitsandbytes 4/8-bit Hugging Face checkpoint transformers saves.
    Quantize(cmd::quantize::Args),
    /// Propose a us-gaap tag for each number in a filing's running text (FiNER-139 by default).
    Tag(cmd::tag::Args),
    /// Answer `ask` and `tag` requests over HTTP with one model in memory (POST /ask, POST /tag, GET /health).
    Serve(cmd::serve::Args),
}

fn main() -> ExitCode {
    keep_freed_memory();
    fix_thread_count();
    let cli = Cli::parse();
    let trains = match &cli.command {
        Command::Eval(_) | Command::Train(_) => true,
        Command::Bench(args) => args.is_train(),
        _ => false,
    };
    if trains {
        shorten_pool_spin();
    }
    let result = rayon::scope(|_| dispatch(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.as_deref();
    match cli.command {
        Command::Index(args) => cmd::index::run(home, args),
        Command::Ask(args) => cmd::ask::run(home, args),
        Command::Fetch(args) => cmd::fetch::run(home, args),
        Command::FetchModel(args) => cmd::fetch_model::run(home, args),
        Command::Datasets(args) => cmd::datasets::run(home, args),
        Command::Train(args) => cmd::train::run(home, args),
        Command::Bench(args) => cmd::bench::run(home, args),
        Command::Estimate(args) => cmd::estimate::run(home, args),
        Command::Eval(args) => cmd::eval::run(home, args),
        Command::Report(args) => cmd::report::run(home, args),
        Command::Quantize(args) => cmd::quantize::run(home, args),
        Command::Tag(args) => cmd::tag::run(home, args),
        Command::Serve(args) => cmd::serve::run(home, args),
    }
}

/// The whole error chain on one line; a cause whose text its parent already quotes (library
/// errors name their source in their own message) is not repeated.
fn error_chain(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

/// candle asks for its thread count on every CPU matmul, and unless `RAYON_NUM_THREADS` is set it
/// counts the physical cores by parsing `/proc/cpuinfo` each time: about 6% of a decoding run's
/// time here, on every attention product and the LM head of every token. Setting the variable
/// once, before any thread exists, to the count candle would compute anyway (which rayon's pool
/// then also uses) removes that. A user's own `RAYON_NUM_THREADS` is left as it is.
fn fix_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// Makes candle's CPU worker threads go to sleep after 1,000 spins waiting for the next op instead
/// of its default 25,000, for `eval`, `train` and `bench train`. They run many short elementwise
/// ops between the quantized matmuls (whose own threads are rayon's), and on 2 cores candle's
/// worker spinning between them takes CPU time from the rayon threads: 1,000 gave 12-48% more
/// examples per second on FPB (docs/evaluation.md, session 13), and more training tokens/s on the
/// machines of sessions 18, 22 and 23 (6-10% in session 22, 0-16% in six alternating pairs in
/// session 23; docs/measurements.md). Only session 7's machine measured it 9% slower, before the
/// quantized products had their own GEMM. A user's own `CANDLE_BARRIER_POOL_SPIN_LIMIT` is kept.
fn shorten_pool_spin() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
}

/// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.
/// candle allocates a fresh buffer per op; glibc serves every buffer over 32 MB (attention scores
/// of a long prompt: 100 MB and more per layer) with its own `mmap`, so each op paid for page
/// faults on fresh zeroed pages and `munmap` afterwards. Measured on FiNER training (1,700-token
/// prompts, docs/training.md): 42 s -> 30 s per step, system time 43 s -> 5 s, the same losses.
/// Peak memory grows a little (582 -> 611 MiB evaluating FPB). Threads other than the main one
/// allocate from their own arenas, which cannot hold a buffer over 64 MB and `mmap` it whatever
/// the settings, so every thread shares the main arena: FiNER training at 16 rows per
/// micro-batch on all seven projections, 103 s -> 74 s per step (system time 62 s -> 8 s), the
/// same peak memory and losses (session 19, docs/training.md). Trimming is off altogether (-1):
/// any positive threshold fits a C int and so still trims a free heap top over 2 GB, which 32
/// FiNER rows per micro-batch pass every layer. `MALLOC_MMAP_MAX_`,
/// `MALLOC_TRIM_THRESHOLD_` or `MALLOC_ARENA_MAX` in the environment leave glibc's settings to
/// the user.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX"]
            .iter()
            .any(|name| std::env::var_os(name).is_some())
        {
            return;
        }
        // glibc's <malloc.h>: int mallopt(int param, int value).
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_MAX: std::ffi::c_int = -4;
        const M_ARENA_MAX: std::ffi::c_int = -8;
        // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
            mallopt(M_MMAP_MAX, 0);
            // -1: never trim (any value up to c_int::MAX still trims a top chunk over 2 GB).
            mallopt(M_TRIM_THRESHOLD, -1);
        }
    }
}
