//! Data-parallel training over Open MPI equals its in-process specs: the `mpi_train` example run
//! by `mpirun -np 2` against one process with the same global batch, against 0/1 Adam over a
//! 2-rank `ThreadGroup`, and against `simulate_compressed_allreduce`; a failing rank stops the job.
//!
//! Build the example first: `cargo build -p trainer --features mpi --example mpi_train`. Without
//! it or `mpirun` the tests skip, except under CI.
#![cfg(feature = "mpi")]

mod common;

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::training::{tiny_model, toy_examples};
use trainer::dist::onebit::simulate_compressed_allreduce;
use trainer::dist::single::SingleProcess;
use trainer::dist::threads::ThreadGroup;
use trainer::dist::Collective;
use trainer::lora::{attach, LoraInit};
use trainer::train::{train, TrainConfig, TrainJob};

/// `rank-<rank>.json` as the example writes it; f32 values are `f32::to_bits` patterns.
#[derive(Debug, serde::Deserialize)]
struct RankReport {
    rank: usize,
    world_size: usize,
    model_seed: u64,
    n_examples: usize,
    data_seed: u64,
    n_validation: usize,
    runs: Vec<RunReport>,
    compressed: Vec<CompressedSeries>,
}

#[derive(Debug, serde::Deserialize)]
struct RunReport {
    name: String,
    config: TrainConfig,
    steps: usize,
    resumed_from: Option<usize>,
    adapter_bits: Vec<Vec<u32>>,
}

#[derive(Debug, serde::Deserialize)]
struct CompressedSeries {
    len: usize,
    calls: Vec<CompressedCall>,
}

#[derive(Debug, serde::Deserialize)]
struct CompressedCall {
    input: Vec<u32>,
    output: Vec<u32>,
    worker_error: Vec<u32>,
    server_error: Vec<u32>,
}

impl RankReport {
    fn run(&self, name: &str) -> &RunReport {
        let found = self.runs.iter().find(|run| run.name == name);
        found.unwrap_or_else(|| panic!("rank {} reports no run {name}", self.rank))
    }
}

fn floats(bits: &[u32]) -> Vec<f32> {
    bits.iter().copied().map(f32::from_bits).collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().copied().map(f32::to_bits).collect()
}

/// `target/<profile>/examples/mpi_train`, next to this test's `deps` folder; `None` (after
/// printing why) when it or `mpirun` is missing outside CI.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("test executable lies in <profile>/deps");
    let binary = profile_dir.join("examples").join("mpi_train");
    let has_mpirun =
        Command::new("mpirun").arg("--version").output().is_ok_and(|output| output.status.success());
    let missing = match (binary.is_file(), has_mpirun) {
        (true, true) => return Some(binary),
        (false, _) => format!(
            "{} is missing; run `cargo build -p trainer --features mpi --example mpi_train`",
            binary.display()
        ),
        (true, false) => "mpirun is not installed (apt-get install openmpi-bin)".to_string(),
    };
    assert!(std::env::var_os("CI").is_none(), "{missing}");
    eprintln!("skipping: {missing}");
    None
}

/// Output and exit status of one `mpirun -np 2` job.
struct Job {
    status: ExitStatus,
    output: String,
    elapsed: Duration,
}

/// Runs `mpirun -np 2 <binary> <args>`, logging to `dir/mpirun.log`; a job still running after
/// `limit` is killed and fails the test.
fn mpirun(binary: &Path, args: &[&str], dir: &Path, limit: Duration) -> Job {
    let log_path = dir.join("mpirun.log");
    let log = File::create(&log_path).expect("create mpirun log");
    let start = Instant::now();
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(binary)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .expect("start mpirun");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mpirun") {
            break status;
        }
        if start.elapsed() > limit {
            // Best effort: the panic below is what reports the hang.
            let _ = child.kill();
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("mpirun still running after {limit:?}; output so far:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log_path).expect("read mpirun log");
    Job { status, output, elapsed: start.elapsed() }
}

/// The two ranks' reports of one successful `mpirun -np 2 mpi_train` job, run once per test
/// binary; `None` when the tests skip.
fn mpi_reports() -> Option<&'static [RankReport]> {
    static REPORTS: OnceLock<Vec<RankReport>> = OnceLock::new();
    let binary = example_binary()?;
    Some(REPORTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out_dir = dir.path().to_str().expect("utf-8 temp dir");
        let job = mpirun(&binary, &["--out", out_dir], dir.path(), Duration::from_secs(300));
        assert!(job.status.success(), "mpirun failed with {}:\n{}", job.status, job.output);
        eprintln!("mpirun -np 2 mpi_train took {:?}", job.elapsed);
        for run in ["adamw", "adamw_resumed", "zero_one_adam"] {
            let adapter = dir.path().join(run).join("adapter/adapter_model.safetensors");
            assert!(adapter.is_file(), "rank 0 did not write {}", adapter.display());
        }
        let reports: Vec<RankReport> = (0..2)
            .map(|rank| {
                let path = dir.path().join(format!("rank-{rank}.json"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            })
            .collect();
        for (rank, report) in reports.iter().enumerate() {
            assert_eq!((report.rank, report.world_size), (rank, 2), "rank-{rank}.json");
        }
        reports
    }))
}

/// Trains the example's tiny model in-process with `config` on `comm` and returns the adapter.
fn train_in_process(report: &RankReport, config: &TrainConfig, comm: &mut dyn Collective) -> Vec<Vec<f32>> {
    let mut model = tiny_model(report.model_seed);
    let adapter = attach(&mut model, &config.lora, LoraInit::Peft { seed: config.seed }).expect("attach");
    let data = toy_examples(report.n_examples, report.data_seed);
    let run_dir = tempfile::tempdir().expect("temp dir");
    let job = TrainJob {
        config,
        model: &model,
        adapter: &adapter,
        train: &data,
        validation: &data[..report.n_validation],
        run_dir: run_dir.path(),
        resume: false,
        base_model: "tiny",
    };
    train(&job, comm, &mut |_| ControlFlow::Continue(())).expect("in-process training");
    adapter
        .vars()
        .iter()
        .map(|var| var.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("adapter values"))
        .collect()
}

#[test]
fn two_mpi_ranks_equal_one_process_with_the_same_global_batch() {
    let Some(reports) = mpi_reports() else { return };
    let (rank0, rank1) = (reports[0].run("adamw"), reports[1].run("adamw"));
    assert_eq!(rank0.steps, rank0.config.steps);
    assert_eq!(rank0.adapter_bits, rank1.adapter_bits, "the ranks ended with different adapters");

    let mut single = rank0.config.clone();
    single.micro_batch *= 2;
    let expected = train_in_process(&reports[0], &single, &mut SingleProcess::new());
    let after_one_step =
        train_in_process(&reports[0], &TrainConfig { steps: 1, ..single.clone() }, &mut SingleProcess::new());
    let actual: Vec<Vec<f32>> = rank0.adapter_bits.iter().map(|bits| floats(bits)).collect();
    let max_diff = max_abs_diff(&actual, &expected);
    assert!(max_diff < 1e-5, "the 2-rank MPI adapter differs from the single-process one by {max_diff}");
    // Equality within 1e-5 means something only if the later steps moved the adapter much further.
    let moved = max_abs_diff(&after_one_step, &expected);
    assert!(moved > 1e-3, "steps 2 to {} moved the adapter by only {moved}", single.steps);
}

#[test]
fn an_mpi_run_resumed_from_its_checkpoint_ends_bitwise_equal() {
    let Some(reports) = mpi_reports() else { return };
    for report in reports {
        let (whole, resumed) = (report.run("adamw"), report.run("adamw_resumed"));
        assert_eq!(resumed.resumed_from, Some(2), "rank {}", report.rank);
        assert_eq!(resumed.steps, whole.steps, "rank {}", report.rank);
        assert!(
            resumed.adapter_bits == whole.adapter_bits,
            "rank {}: the resumed adapter differs",
            report.rank
        );
    }
}

#[test]
fn zero_one_adam_over_mpi_equals_a_thread_group_bitwise() {
    let Some(reports) = mpi_reports() else { return };
    let config = &reports[0].run("zero_one_adam").config;
    let zero_one = &config.optim.zero_one;
    assert!(
        zero_one.var_freeze_step + 2 * zero_one.local_step_scaler < config.steps as u64,
        "the run must reach 0/1 Adam's local steps: {zero_one:?} over {} steps",
        config.steps
    );
    let threads = ThreadGroup::run(2, |comm| Ok(train_in_process(&reports[0], config, comm)))
        .expect("thread group training");
    for (rank, (report, expected)) in reports.iter().zip(&threads).enumerate() {
        let expected: Vec<Vec<u32>> = expected.iter().map(|values| bits(values)).collect();
        assert!(
            report.run("zero_one_adam").adapter_bits == expected,
            "rank {rank}: 0/1 Adam over mpi differs from the thread group (max diff {})",
            max_abs_diff(
                &report.run("zero_one_adam").adapter_bits.iter().map(|bits| floats(bits)).collect::<Vec<_>>(),
                &threads[rank]
            )
        );
    }
}

#[test]
fn compressed_allreduce_over_mpi_equals_the_simulation_bitwise() {
    let Some(reports) = mpi_reports() else { return };
    let world_size = reports.len();
    assert!(!reports[0].compressed.is_empty());
    for (series_idx, series) in reports[0].compressed.iter().enumerate() {
        let len = series.len;
        let padded = trainer::dist::onebit::padded_len(len, world_size);
        let mut worker_errors = vec![vec![0f32; padded]; world_size];
        let mut server_errors = vec![vec![0f32; padded / world_size]; world_size];
        for call_idx in 0..series.calls.len() {
            let calls: Vec<&CompressedCall> =
                reports.iter().map(|report| &report.compressed[series_idx].calls[call_idx]).collect();
            assert_ne!(
                calls[0].input, calls[1].input,
                "series of {len}, call {call_idx}: same inputs on both ranks"
            );
            let mut inputs: Vec<Vec<f32>> = calls.iter().map(|call| floats(&call.input)).collect();
            simulate_compressed_allreduce(&mut inputs, &mut worker_errors, &mut server_errors)
                .expect("simulation");
            for (rank, call) in calls.iter().enumerate() {
                let context = format!("series of {len} values, call {call_idx}, rank {rank}");
                assert_eq!(call.output, bits(&inputs[rank]), "{context}: output");
                assert_eq!(call.worker_error, bits(&worker_errors[rank]), "{context}: worker error");
                assert_eq!(call.server_error, bits(&server_errors[rank]), "{context}: server error");
            }
        }
    }
}

#[test]
fn a_failing_mpi_rank_stops_the_training_job_naming_it() {
    let Some(binary) = example_binary() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().to_str().expect("utf-8 temp dir");
    let job = mpirun(&binary, &["--out", out_dir, "--fail-rank", "1"], dir.path(), Duration::from_secs(120));
    assert!(!job.status.success(), "mpirun succeeded although rank 1 failed:\n{}", job.output);
    let expected = "rank 1 of 2: aborting the mpi job: invalid input: injected failure on rank 1 at step 2";
    assert!(job.output.contains(expected), "output lacks {expected:?}:\n{}", job.output);
    assert!(!dir.path().join("rank-0.json").exists(), "rank 0 carried on after rank 1 failed");
    assert!(job.elapsed < Duration::from_secs(60), "the job took {:?} to stop", job.elapsed);
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "adapters have different tensor counts");
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}
