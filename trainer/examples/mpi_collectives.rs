//! Conformance check for `MpiWorld`: runs every collective with deterministic per-rank data and
//! reports what each rank saw, for comparison with the in-process `ThreadGroup`.
//!
//! ```text
//! cargo build -p trainer --features mpi --example mpi_collectives
//! mpirun --allow-run-as-root --oversubscribe -np 2 target/debug/examples/mpi_collectives [--out DIR]
//! ```
//!
//! Each rank prints its `ConformanceReport` as one JSON line, or writes `DIR/rank-<rank>.json`
//! with `--out DIR`. `--fail-rank R` makes rank `R` fail after the first barrier (to check that
//! the job stops); `--mismatch-rank R` makes rank `R` pass one value more to an all-reduce (to
//! check that every rank reports the mismatch); `--bench-mib N` also times an all-reduce of `N` MiB per rank.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use trainer::dist::conformance::{expected_report, run_conformance};
use trainer::dist::mpi::MpiWorld;
use trainer::dist::Collective;

const USAGE: &str =
    "usage: mpi_collectives [--out DIR] [--fail-rank RANK] [--mismatch-rank RANK] [--bench-mib MIB]";

#[derive(Default)]
struct Options {
    out_dir: Option<PathBuf>,
    fail_rank: Option<usize>,
    mismatch_rank: Option<usize>,
    bench_mib: Option<usize>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options::default();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--out" => options.out_dir = Some(PathBuf::from(value()?)),
                "--fail-rank" => options.fail_rank = Some(parse_number(&flag, &value()?)?),
                "--mismatch-rank" => options.mismatch_rank = Some(parse_number(&flag, &value()?)?),
                "--bench-mib" => options.bench_mib = Some(parse_number(&flag, &value()?)?),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(options)
    }
}

fn parse_number(flag: &str, text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("{flag} needs a number, got {text}"))
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(reason) => {
            eprintln!("mpi_collectives: {reason}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut world = match MpiWorld::init() {
        Ok(world) => world,
        Err(error) => {
            eprintln!("mpi_collectives: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(&mut world, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Returning would finalise MPI and wait for ranks that wait for us; abort stops them.
            world.abort(&error.to_string());
            ExitCode::FAILURE
        }
    }
}

fn run(world: &mut MpiWorld, options: &Options) -> Result<(), Box<dyn Error>> {
    let rank = world.rank();
    if options.fail_rank == Some(rank) {
        // The others are inside their next collective by the time this rank gives up.
        world.barrier()?;
        return Err(format!("injected failure on rank {rank}").into());
    }
    if let Some(odd_rank) = options.mismatch_rank {
        let mut values = vec![1.0f32; 4 + usize::from(rank == odd_rank)];
        world.all_reduce_sum(&mut values)?;
        return Err("all_reduce_sum of mismatched lengths succeeded".into());
    }
    let report = run_conformance(world)?;
    if report != expected_report(rank, world.world_size()) {
        return Err(format!("rank {rank}: conformance report differs from the expected one").into());
    }
    let line = serde_json::to_string(&report)?;
    match &options.out_dir {
        Some(dir) => {
            let path = dir.join(format!("rank-{rank}.json"));
            std::fs::write(&path, line)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        }
        None => println!("{line}"),
    }
    if let Some(mib) = options.bench_mib {
        bench_all_reduce(world, mib)?;
    }
    Ok(())
}

/// Times `all_reduce_sum` over `mib` MiB per rank; rank 0 prints one JSON line.
fn bench_all_reduce(world: &mut MpiWorld, mib: usize) -> Result<(), Box<dyn Error>> {
    const N_WARMUP: usize = 3;
    const N_TIMED: usize = 20;
    let mut values = vec![1.0f32; mib * (1 << 20) / 4];
    for _ in 0..N_WARMUP {
        world.all_reduce_sum(&mut values)?;
    }
    world.barrier()?;
    let start = Instant::now();
    for _ in 0..N_TIMED {
        world.all_reduce_sum(&mut values)?;
    }
    world.barrier()?;
    let seconds_per_all_reduce = start.elapsed().as_secs_f64() / N_TIMED as f64;
    if world.rank() == 0 {
        let bytes_per_rank = values.len() * 4;
        let gib_per_sec = bytes_per_rank as f64 / seconds_per_all_reduce / f64::from(1u32 << 30);
        println!(
            "{{\"bench\":\"all_reduce_sum\",\"world_size\":{},\"bytes_per_rank\":{bytes_per_rank},\
             \"seconds_per_all_reduce\":{seconds_per_all_reduce:.6},\"gib_per_sec_per_rank\":{gib_per_sec:.3}}}",
            world.world_size()
        );
    }
    Ok(())
}
