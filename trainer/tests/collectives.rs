//! Collectives: `SingleProcess` and `ThreadGroup` against the shared conformance routine, failure
//! propagation between ranks, and (feature `mpi`) Open MPI processes against `ThreadGroup`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trainer::dist::conformance::{expected_report, run_conformance, ConformanceReport};
use trainer::dist::single::SingleProcess;
use trainer::dist::threads::ThreadGroup;
use trainer::dist::Collective;
use trainer::{Error, Result};

/// Runs `f` on its own thread and fails the test if it does not finish in time, so that a
/// collective that hangs is a failure rather than a stuck test run.
fn within<T: Send + 'static>(seconds: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(f()));
    match receiver.recv_timeout(Duration::from_secs(seconds)) {
        Ok(value) => value,
        Err(error) => panic!("still running after {seconds} s ({error}): a collective hangs"),
    }
}

/// Error messages the surviving ranks saw, by rank.
type Seen = Arc<Mutex<Vec<(usize, String)>>>;

fn record(seen: &Seen, rank: usize, outcome: Result<()>) -> Result<()> {
    if let Err(error) = &outcome {
        seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((rank, error.to_string()));
    }
    outcome
}

fn seen_messages(seen: &Seen) -> Vec<(usize, String)> {
    let mut messages = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    messages.sort();
    messages
}

#[test]
fn single_process_passes_conformance() {
    let report = run_conformance(&mut SingleProcess::new()).expect("single process conformance");
    assert_eq!(report, expected_report(0, 1));
}

#[test]
fn thread_group_passes_conformance_for_world_sizes_1_to_4() {
    for world_size in 1..=4 {
        let reports = within(120, move || ThreadGroup::run(world_size, run_conformance))
            .unwrap_or_else(|error| panic!("world size {world_size}: {error}"));
        let expected: Vec<ConformanceReport> =
            (0..world_size).map(|rank| expected_report(rank, world_size)).collect();
        assert_eq!(reports, expected, "world size {world_size}");
    }
}

#[test]
fn sums_are_taken_in_rank_order() {
    // In f32, (1e8 + 1) - 1e8 + 1 = 1 while 1e8 - 1e8 + 1 + 1 = 2: only rank order gives 1.
    let contributions = [1.0e8f32, 1.0, -1.0e8, 1.0];
    let sums = within(30, move || {
        ThreadGroup::run(4, move |comm| {
            let mut buf = [contributions[comm.rank()]];
            comm.all_reduce_sum(&mut buf)?;
            Ok(buf[0].to_bits())
        })
    })
    .expect("all-reduce");
    assert_eq!(sums, vec![1.0f32.to_bits(); 4]);
}

#[test]
fn repeated_collectives_keep_ranks_in_step() {
    let results = within(60, || {
        ThreadGroup::run(4, |comm| {
            let mut last = Vec::new();
            for step in 0..300usize {
                let mut buf = vec![(comm.rank() * 1000 + step) as f32; 3];
                comm.all_reduce_sum(&mut buf)?;
                let expected = (0..4).map(|rank| (rank * 1000 + step) as f32).sum::<f32>();
                if buf != vec![expected; 3] {
                    return Err(Error::InvalidInput { reason: format!("step {step}: got {buf:?}") });
                }
                let root = step % 4;
                let mut token = vec![(comm.rank() * 50 + step) as u8; 2];
                comm.broadcast(&mut token, root)?;
                if token != vec![(root * 50 + step) as u8; 2] {
                    return Err(Error::InvalidInput {
                        reason: format!("step {step}: broadcast gave {token:?}"),
                    });
                }
                last = token;
            }
            Ok(last)
        })
    })
    .expect("300 steps");
    assert_eq!(results, vec![vec![(3 * 50 + 299) as u8; 2]; 4]);
}

#[test]
fn uneven_all_to_all_and_gather_chunks() {
    let results = within(30, || {
        ThreadGroup::run(3, |comm| {
            let rank = comm.rank() as u8;
            let send: Vec<u8> = (0..21).map(|idx| rank * 100 + idx).collect();
            let mut recv = vec![0u8; 21];
            comm.all_to_all(&send, &mut recv)?;
            let mut gathered = vec![0f32; 3 * 5];
            comm.all_gather_f32(&[f32::from(rank); 5], &mut gathered)?;
            Ok((recv, gathered))
        })
    })
    .expect("all-to-all");
    for (rank, (recv, gathered)) in results.into_iter().enumerate() {
        let expected: Vec<u8> = (0..3u8)
            .flat_map(|source| (0..7u8).map(move |idx| source * 100 + rank as u8 * 7 + idx))
            .collect();
        assert_eq!(recv, expected, "rank {rank} all-to-all");
        assert_eq!(gathered, [[0f32; 5], [1.0; 5], [2.0; 5]].concat(), "rank {rank} all-gather");
    }
}

#[test]
fn rank_returning_an_error_makes_the_others_fail_naming_it() {
    let seen: Seen = Arc::default();
    let seen_by_ranks = Arc::clone(&seen);
    let outcome = within(30, move || {
        ThreadGroup::run(3, move |comm| {
            if comm.rank() == 1 {
                return Err(Error::InvalidInput { reason: "injected on rank 1".to_string() });
            }
            let first = comm.barrier();
            let mut buf = [1.0f32];
            // Later collectives fail too, instead of waiting for the dead rank.
            let second = comm.all_reduce_sum(&mut buf);
            record(&seen_by_ranks, comm.rank(), first.and(second))
        })
    });
    let error = outcome.expect_err("rank 1 failed");
    assert_eq!(error.to_string(), "invalid input: injected on rank 1", "run returns the original error");
    let messages = seen_messages(&seen);
    assert_eq!(messages.len(), 2, "{messages:?}");
    for (rank, message) in messages {
        assert_eq!(message, format!("rank {rank} of 3: rank 1 failed: invalid input: injected on rank 1"));
    }
}

#[test]
fn panicking_rank_makes_the_others_fail_naming_it() {
    let seen: Seen = Arc::default();
    let seen_by_ranks = Arc::clone(&seen);
    let outcome = within(30, move || {
        ThreadGroup::run(4, move |comm| {
            let mut buf = vec![1.0f32; 8];
            comm.all_reduce_sum(&mut buf)?;
            if comm.rank() == 2 {
                panic!("boom on rank 2");
            }
            record(&seen_by_ranks, comm.rank(), comm.all_reduce_sum(&mut buf))
        })
    });
    let error = outcome.expect_err("rank 2 panicked");
    assert_eq!(error.to_string(), "rank 2 of 4: panicked: boom on rank 2");
    let messages = seen_messages(&seen);
    assert_eq!(messages.len(), 3, "{messages:?}");
    for (rank, message) in messages {
        assert_eq!(message, format!("rank {rank} of 4: rank 2 failed: panicked: boom on rank 2"));
    }
}

#[test]
fn aborting_rank_makes_the_others_fail_with_its_reason() {
    let outcome = within(30, || {
        ThreadGroup::run(2, |comm| {
            if comm.rank() == 0 {
                comm.abort("loss is nan at step 7");
                return Ok(String::new());
            }
            comm.barrier()?;
            Ok("barrier passed".to_string())
        })
    });
    let error = outcome.expect_err("rank 0 aborted");
    assert_eq!(error.to_string(), "rank 0 of 2: loss is nan at step 7");
}

#[test]
fn rank_returning_early_fails_the_collective_it_skipped() {
    let outcome = within(30, || {
        ThreadGroup::run(2, |comm| {
            comm.barrier()?;
            if comm.rank() == 1 {
                comm.barrier()?;
            }
            Ok(())
        })
    });
    let error = outcome.expect_err("rank 1 waits for rank 0");
    assert_eq!(error.to_string(), "rank 1 of 2: rank 0 returned before joining barrier #2");
}

#[test]
fn mismatched_lengths_are_an_error_naming_both() {
    let outcome = within(30, || {
        ThreadGroup::run(3, |comm| {
            let mut buf = vec![0f32; 4 + comm.rank() % 2];
            comm.all_reduce_sum(&mut buf)
        })
    });
    let message = outcome.expect_err("lengths differ").to_string();
    assert!(
        message.ends_with("all_reduce_sum buffer length mismatch: rank 0 has 4 values, rank 1 has 5 values"),
        "{message}"
    );

    let outcome = within(30, || {
        ThreadGroup::run(2, |comm| {
            let send = vec![7u8; 3 + comm.rank()];
            let mut recv = vec![0u8; 2 * send.len()];
            comm.all_gather(&send, &mut recv)
        })
    });
    let message = outcome.expect_err("lengths differ").to_string();
    assert!(
        message.ends_with("all_gather buffer length mismatch: rank 0 has 3 bytes, rank 1 has 4 bytes"),
        "{message}"
    );
}

#[test]
fn mismatched_operations_and_roots_are_errors() {
    let outcome = within(30, || {
        ThreadGroup::run(
            2,
            |comm| if comm.rank() == 0 { comm.barrier() } else { comm.broadcast(&mut [0u8; 4], 0) },
        )
    });
    let message = outcome.expect_err("operations differ").to_string();
    assert!(message.ends_with("rank 0 called barrier but rank 1 called broadcast"), "{message}");

    let outcome = within(30, || ThreadGroup::run(2, |comm| comm.broadcast(&mut [0u8; 4], comm.rank())));
    let message = outcome.expect_err("roots differ").to_string();
    assert!(
        message.ends_with("broadcast root mismatch: rank 0 names root 0, rank 1 names root 1"),
        "{message}"
    );
}

#[test]
fn bad_local_shapes_are_errors() {
    let outcome = within(30, || ThreadGroup::run(2, |comm| comm.all_to_all(&[1, 2, 3], &mut [0; 3])));
    let message = outcome.expect_err("3 bytes over 2 ranks").to_string();
    assert!(message.ends_with("all_to_all send has 3 bytes, not a multiple of world size 2"), "{message}");

    let mut single = SingleProcess::new();
    let error = single.all_gather_f32(&[1.0, 2.0], &mut [0.0; 3]).expect_err("recv too long");
    assert_eq!(
        error.to_string(),
        "rank 0 of 1: all_gather_f32 recv has 3 values, expected world size 1 x send 2"
    );
    let error = single.broadcast(&mut [0u8; 2], 1).expect_err("no rank 1");
    assert_eq!(error.to_string(), "rank 0 of 1: broadcast root 1 is not a rank of world size 1");
    let error = ThreadGroup::run(0, |_| Ok(())).expect_err("no ranks");
    assert_eq!(error.to_string(), "invalid input: thread group world size is 0");
}

#[test]
fn single_process_fails_after_abort() {
    let mut single = SingleProcess::new();
    single.barrier().expect("barrier before abort");
    single.abort("out of memory");
    let error = single.barrier().expect_err("aborted");
    assert_eq!(error.to_string(), "rank 0 of 1: rank 0 failed: out of memory");
}

#[test]
fn mean_divides_by_world_size() {
    let means = within(30, || {
        ThreadGroup::run(4, |comm| {
            let mut buf = [comm.rank() as f32, 8.0];
            comm.all_reduce_mean(&mut buf)?;
            Ok(buf)
        })
    })
    .expect("mean");
    assert_eq!(means, vec![[1.5, 8.0]; 4]);
}

#[cfg(feature = "mpi")]
mod mpi {
    //! Runs the `mpi_collectives` example under `mpirun`. Build it first:
    //! `cargo build -p trainer --features mpi --example mpi_collectives`.

    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitStatus, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// `target/<profile>/examples/mpi_collectives`, next to this test's `deps` folder; `None`
    /// (after printing why) when it or `mpirun` is missing outside CI.
    fn example_binary() -> Option<PathBuf> {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir =
            exe.parent().and_then(Path::parent).expect("test executable lies in <profile>/deps");
        let binary = profile_dir.join("examples").join("mpi_collectives");
        let has_mpirun =
            Command::new("mpirun").arg("--version").output().is_ok_and(|output| output.status.success());
        let missing = match (binary.is_file(), has_mpirun) {
            (true, true) => return Some(binary),
            (false, _) => format!(
                "{} is missing; run `cargo build -p trainer --features mpi --example mpi_collectives`",
                binary.display()
            ),
            (true, false) => "mpirun is not installed (apt-get install openmpi-bin)".to_string(),
        };
        assert!(std::env::var_os("CI").is_none(), "{missing}");
        eprintln!("skipping: {missing}");
        None
    }

    /// Output and exit status of `mpirun -np 2 <binary> <args>`, killed after `limit`.
    struct Job {
        status: ExitStatus,
        output: String,
        elapsed: Duration,
    }

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
                // Best effort: the assertion below is what reports the hang.
                let _ = child.kill();
                let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("mpirun still running after {limit:?}; output so far:\n{output}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&log_path).expect("read mpirun log");
        Job { status, output, elapsed: start.elapsed() }
    }

    #[test]
    fn mpi_ranks_match_the_thread_group() {
        let Some(binary) = example_binary() else { return };
        let dir = tempfile::tempdir().expect("temp dir");
        let out_dir = dir.path().to_str().expect("utf-8 temp dir");
        let job = mpirun(&binary, &["--out", out_dir], dir.path(), Duration::from_secs(120));
        assert!(job.status.success(), "mpirun failed with {}:\n{}", job.status, job.output);
        let mpi_reports: Vec<ConformanceReport> = (0..2)
            .map(|rank| {
                let path = dir.path().join(format!("rank-{rank}.json"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            })
            .collect();
        let thread_reports = ThreadGroup::run(2, run_conformance).expect("thread group conformance");
        assert_eq!(mpi_reports, thread_reports);
        assert_eq!(mpi_reports, vec![expected_report(0, 2), expected_report(1, 2)]);
        eprintln!("mpirun -np 2 conformance took {:?}", job.elapsed);
    }

    #[test]
    fn failing_mpi_rank_stops_the_job_naming_it() {
        let Some(binary) = example_binary() else { return };
        let dir = tempfile::tempdir().expect("temp dir");
        let job = mpirun(&binary, &["--fail-rank", "1"], dir.path(), Duration::from_secs(60));
        assert!(!job.status.success(), "mpirun succeeded although rank 1 failed:\n{}", job.output);
        assert!(
            job.output.contains("rank 1 of 2: aborting the mpi job: injected failure on rank 1"),
            "output does not name the failed rank:\n{}",
            job.output
        );
        assert!(job.elapsed < Duration::from_secs(20), "the job took {:?} to stop", job.elapsed);
        eprintln!("mpirun stopped {:?} after start:\n{}", job.elapsed, job.output);
    }

    #[test]
    fn mismatched_mpi_lengths_stop_the_job_naming_both() {
        let Some(binary) = example_binary() else { return };
        let dir = tempfile::tempdir().expect("temp dir");
        let job = mpirun(&binary, &["--mismatch-rank", "1"], dir.path(), Duration::from_secs(60));
        assert!(!job.status.success(), "mpirun succeeded despite mismatched lengths:\n{}", job.output);
        // Whichever rank aborts first, its message names both lengths.
        let expected = "all_reduce_sum buffer length mismatch: rank 0 has 4 values, rank 1 has 5 values";
        assert!(job.output.contains(expected), "output lacks {expected:?}:\n{}", job.output);
    }
}
