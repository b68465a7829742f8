//! The 1-bit compressed all-reduce over in-process ranks equals its single-process simulation bit
//! for bit, and its error feedback makes repeated averages converge to the true mean.

use trainer::dist::onebit::{
    compressed_allreduce, padded_len, server_chunk_len, simulate_compressed_allreduce,
};
use trainer::dist::single::SingleProcess;
use trainer::dist::threads::{ThreadGroup, ThreadRank};
use trainer::dist::Collective;

/// Rank `rank`'s input for call `call`: a deterministic mix of signs and magnitudes, with zeros.
fn input(rank: usize, call: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|j| {
            if (j + call) % 11 == 3 {
                return 0.0;
            }
            let phase = (rank * 131 + call * 17 + j * 7) as f32;
            (phase * 0.7548).sin() * (1.0 + (j % 5) as f32 * 0.5)
        })
        .collect()
}

/// Per call, every rank's output, then each rank's final error buffers.
type Outcome = (Vec<Vec<Vec<f32>>>, Vec<Vec<f32>>, Vec<Vec<f32>>);

fn collective_run(world_size: usize, len: usize, n_calls: usize) -> Outcome {
    let per_rank = ThreadGroup::run(world_size, |comm: &mut ThreadRank| {
        let mut worker_error = vec![0.0f32; padded_len(len, world_size)];
        let mut server_error = vec![0.0f32; server_chunk_len(len, world_size)];
        let mut outputs = Vec::new();
        for call in 0..n_calls {
            let mut x = input(comm.rank(), call, len);
            compressed_allreduce(comm, &mut x, &mut worker_error, &mut server_error)?;
            outputs.push(x);
        }
        Ok((outputs, worker_error, server_error))
    })
    .unwrap();
    let outputs_by_call = (0..n_calls)
        .map(|call| per_rank.iter().map(|(outputs, _, _)| outputs[call].clone()).collect())
        .collect();
    let worker_errors = per_rank.iter().map(|(_, worker, _)| worker.clone()).collect();
    let server_errors = per_rank.iter().map(|(_, _, server)| server.clone()).collect();
    (outputs_by_call, worker_errors, server_errors)
}

fn simulated_run(world_size: usize, len: usize, n_calls: usize) -> Outcome {
    let mut worker_errors = vec![vec![0.0f32; padded_len(len, world_size)]; world_size];
    let mut server_errors = vec![vec![0.0f32; server_chunk_len(len, world_size)]; world_size];
    let mut outputs_by_call = Vec::new();
    for call in 0..n_calls {
        let mut inputs: Vec<Vec<f32>> = (0..world_size).map(|rank| input(rank, call, len)).collect();
        simulate_compressed_allreduce(&mut inputs, &mut worker_errors, &mut server_errors).unwrap();
        outputs_by_call.push(inputs);
    }
    (outputs_by_call, worker_errors, server_errors)
}

fn bits(outcome: &Outcome) -> Vec<u32> {
    let (outputs, worker, server) = outcome;
    let values =
        outputs.iter().flatten().flatten().chain(worker.iter().flatten()).chain(server.iter().flatten());
    values.map(|value| value.to_bits()).collect()
}

#[test]
fn threads_equal_the_simulation_bit_for_bit() {
    for world_size in [2usize, 3, 4] {
        for len in [1usize, 7, 37, 100] {
            let collective = collective_run(world_size, len, 5);
            let simulated = simulated_run(world_size, len, 5);
            assert_eq!(bits(&collective), bits(&simulated), "world {world_size}, {len} values");
            for (call, outputs) in collective.0.iter().enumerate() {
                assert!(outputs.iter().all(|x| x == &outputs[0]), "ranks disagree at call {call}");
            }
            // The error feedback is carried: later calls start from non-zero errors.
            assert!(collective.1.iter().flatten().any(|&error| error != 0.0));
        }
    }
}

#[test]
fn single_process_equals_the_one_rank_simulation() {
    let len = 13;
    let mut comm = SingleProcess::new();
    let mut worker_error = vec![0.0f32; padded_len(len, 1)];
    let mut server_error = vec![0.0f32; server_chunk_len(len, 1)];
    let mut worker_errors = vec![worker_error.clone()];
    let mut server_errors = vec![server_error.clone()];
    for call in 0..4 {
        let mut x = input(0, call, len);
        compressed_allreduce(&mut comm, &mut x, &mut worker_error, &mut server_error).unwrap();
        let mut inputs = vec![input(0, call, len)];
        simulate_compressed_allreduce(&mut inputs, &mut worker_errors, &mut server_errors).unwrap();
        assert_eq!(x, inputs[0], "call {call}");
    }
    assert_eq!(worker_error, worker_errors[0]);
    assert_eq!(server_error, server_errors[0]);
}

#[test]
fn error_feedback_makes_repeated_averages_converge_to_the_mean() {
    let (world_size, len, n_calls) = (4usize, 37usize, 400usize);
    let inputs: Vec<Vec<f32>> = (0..world_size).map(|rank| input(rank, 0, len)).collect();
    let true_mean: Vec<f64> =
        (0..len).map(|j| inputs.iter().map(|x| f64::from(x[j])).sum::<f64>() / world_size as f64).collect();
    let mut worker_errors = vec![vec![0.0f32; padded_len(len, world_size)]; world_size];
    let mut server_errors = vec![vec![0.0f32; server_chunk_len(len, world_size)]; world_size];
    let mut running_sum = vec![0.0f64; len];
    let mut first_call_error = 0.0f64;
    for call in 0..n_calls {
        let mut xs = inputs.clone();
        simulate_compressed_allreduce(&mut xs, &mut worker_errors, &mut server_errors).unwrap();
        if call == 0 {
            first_call_error =
                max_abs_diff(&xs[0].iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), &true_mean);
        }
        running_sum.iter_mut().zip(&xs[0]).for_each(|(sum, &value)| *sum += f64::from(value));
    }
    let average: Vec<f64> = running_sum.iter().map(|sum| sum / n_calls as f64).collect();
    let averaged_error = max_abs_diff(&average, &true_mean);
    println!("one call: max error {first_call_error:.4}; average of {n_calls} calls: {averaged_error:.5}");
    // Without feedback the average of identical compressions keeps the one-call error.
    assert!(first_call_error > 0.1, "{first_call_error}");
    assert!(averaged_error < first_call_error / 50.0, "{averaged_error} vs {first_call_error}");
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn mismatched_buffers_are_errors_and_empty_inputs_send_nothing() {
    let mut comm = SingleProcess::new();
    let mut x = vec![1.0f32; 10];
    let error = compressed_allreduce(&mut comm, &mut x, &mut [0.0; 8], &mut [0.0; 8]).unwrap_err();
    assert!(error.to_string().contains("1-bit all-reduce of 10 values over 1 ranks"), "{error}");

    let mut worker_error = vec![0.5f32; 8];
    let mut server_error = vec![0.5f32; 8];
    compressed_allreduce(&mut comm, &mut [], &mut worker_error, &mut server_error).unwrap();
    assert!(worker_error.iter().chain(&server_error).all(|&error| error == 0.0));

    let mut uneven = vec![vec![1.0f32; 3], vec![1.0; 4]];
    let mut worker_errors = vec![vec![0.0; 16]; 2];
    let mut server_errors = vec![vec![0.0; 8]; 2];
    let error =
        simulate_compressed_allreduce(&mut uneven, &mut worker_errors, &mut server_errors).unwrap_err();
    assert!(error.to_string().contains("rank 1 has 4 values"), "{error}");
}
