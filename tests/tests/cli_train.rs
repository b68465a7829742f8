//! `finagent train` end to end on the default model: a run killed with SIGKILL and resumed ends
//! with the same adapter bytes as an uninterrupted run, and bad configurations are clear errors.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, finagent, model, shared, stderr, stdout};

/// A short FPB run on the f32 base: 6 steps of 2 examples, a checkpoint every 2 steps.
fn train_args<'a>(out: &'a str, model: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--out",
        out,
        "--model",
        model,
        "--bits",
        "32",
        "--tasks",
        "fpb",
        "--steps",
        "6",
        "--quiet",
        "--set",
        "micro_batch=2",
        "--set",
        "checkpoint_every=2",
        "--set",
        "eval_every=3",
        "--set",
        "data.validation_examples=4",
        "--set",
        "data.max_seq_len=96",
        "--set",
        "lora.rank=4",
    ]
}

fn data_env(shared: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    vec![("FINAGENT_DATA", shared.join("data"))]
}

#[test]
fn a_killed_run_resumes_to_the_same_adapter_bytes() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let env = data_env(&shared);
    let env: Vec<(&str, &Path)> = env.iter().map(|(key, value)| (*key, value.as_path())).collect();
    let model = model.to_str().unwrap().to_string();

    let whole = home.path().join("whole");
    let output = finagent(home.path(), &train_args(whole.to_str().unwrap(), &model), &env);
    assert!(output.status.success(), "uninterrupted run failed: {}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(summary["steps"], 6);
    assert!(summary["final_loss"].as_f64().is_some_and(f64::is_finite));
    for file in [
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "config.toml",
        "mixture.json",
        "metrics.jsonl",
        "loss.svg",
    ] {
        assert!(whole.join(file).is_file(), "{file} missing from the run directory");
    }
    let saved = std::fs::read_to_string(whole.join("config.toml")).unwrap();
    assert!(saved.contains("compute_dtype = \"f32\""), "the run records its arithmetic:\n{saved}");

    // Kill the second run as soon as its step-4 checkpoint is in place, then resume it.
    let parts = home.path().join("parts");
    let mut child = Command::new(binary())
        .args(train_args(parts.to_str().unwrap(), &model))
        .env("FINAGENT_HOME", home.path())
        .env("FINAGENT_DATA", shared.join("data"))
        .env_remove("FINAGENT_MODEL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let latest = parts.join("checkpoints/latest");
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(&latest).is_ok_and(|name| name.trim() == "step-0000004") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before its step-4 checkpoint");
        }
        assert!(started.elapsed() < Duration::from_secs(600), "no step-4 checkpoint after 10 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    let mut resume = train_args(parts.to_str().unwrap(), &model);
    resume.push("--resume");
    let output = finagent(home.path(), &resume, &env);
    assert!(output.status.success(), "resumed run failed: {}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(summary["resumed_from"], 4);
    let expected = std::fs::read(whole.join("adapter/adapter_model.safetensors")).unwrap();
    let actual = std::fs::read(parts.join("adapter/adapter_model.safetensors")).unwrap();
    assert!(expected == actual, "the resumed adapter differs from the uninterrupted one");
    let lines = std::fs::read_to_string(parts.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 6, "metrics.jsonl should hold each step once:\n{lines}");

    // A new run can start from the finished adapter; one whose [lora] does not fit it is refused.
    let adapter_dir = whole.join("adapter");
    let init = format!("init_adapter={:?}", adapter_dir.to_str().unwrap());
    let continued = home.path().join("continued");
    let mut args = train_args(continued.to_str().unwrap(), &model);
    args.extend(["--set", &init, "--set", "steps=1"]);
    let output = finagent(home.path(), &args, &env);
    assert!(output.status.success(), "continued run failed: {}", stderr(&output));
    let saved = std::fs::read_to_string(continued.join("config.toml")).unwrap();
    assert!(saved.contains("init_adapter"), "{saved}");
    let refused = home.path().join("refused");
    let mut args = train_args(refused.to_str().unwrap(), &model);
    args.extend(["--set", &init, "--set", "lora.rank=8"]);
    let output = finagent(home.path(), &args, &env);
    assert!(!output.status.success(), "a rank-8 run started from a rank-4 adapter");
    let message = stderr(&output);
    assert!(message.contains("init_adapter") && message.contains("rank 4"), "{message}");
    assert!(!message.contains("panicked"), "{message}");

    // Without --resume, an existing run is not overwritten.
    let output = finagent(home.path(), &train_args(parts.to_str().unwrap(), &model), &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--resume"), "{}", stderr(&output));
}

#[test]
fn bad_configurations_are_named() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().unwrap();
    let env = data_env(&shared);
    let env: Vec<(&str, &Path)> = env.iter().map(|(key, value)| (*key, value.as_path())).collect();
    let out = home.path().join("run");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--set", "lora.rnak=4"], "rnak"),
        (&["--set", "compute_dtype=\"f16\""], "f16"),
        (&["--compute-dtype", "f16"], "f16"),
        (
            &["--bits", "32", "--set", "compute_dtype=\"bf16\""],
            "compute_dtype = \"bf16\": needs a 4- or 8-bit base",
        ),
        (&["--bits", "32", "--compute-dtype", "bf16"], "compute_dtype = \"bf16\": needs a 4- or 8-bit base"),
        (&["--tasks", "fbp"], "fbp"),
        (&["--bits", "3"], "3"),
        (&["--set", "optim.optimizer=sgd"], "sgd"),
        (&["--set", "steps=0"], "steps"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["train", "--out", out, "--model", "/nonexistent.gguf"];
        args.extend_from_slice(extra);
        let output = finagent(home.path(), &args, &env);
        assert!(!output.status.success(), "{extra:?} was accepted");
        let message = stderr(&output);
        assert!(message.contains(named), "{extra:?}: message does not name {named:?}: {message}");
        assert!(!message.contains("panicked"), "{message}");
    }
    let config = home.path().join("bad.toml");
    std::fs::write(&config, "steps = \"many\"\n").unwrap();
    let output = finagent(home.path(), &["train", "--out", out, "--config", config.to_str().unwrap()], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("bad.toml"), "{}", stderr(&output));
}

#[test]
fn ask_runs_with_an_adapter_and_names_one_that_does_not_fit() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let mirror = shared.join("xbrl");
    let env: Vec<(&str, &Path)> = vec![("FINAGENT_XBRL_MIRROR", mirror.as_path())];
    let fixture = common::workspace_root().join("trainer/tests/fixtures/peft_adapter");
    let question = "What was AAPL's 2022 revenue?";
    let model = model.to_str().unwrap();
    let args =
        ["ask", "--json", "--model", model, "--bits", "8", "--adapter", fixture.to_str().unwrap(), question];
    let output = finagent(home.path(), &args, &env);
    assert!(output.status.success(), "ask with an adapter failed: {}", stderr(&output));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(answer["retrieved"].as_array().is_some_and(|facts| !facts.is_empty()), "{answer}");

    // The same tensors under a config that claims rank 3: every A/B shape is wrong.
    let broken = home.path().join("broken-adapter");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(fixture.join("adapter_model.safetensors"), broken.join("adapter_model.safetensors"))
        .unwrap();
    let config =
        std::fs::read_to_string(fixture.join("adapter_config.json")).unwrap().replace("\"r\": 2", "\"r\": 3");
    std::fs::write(broken.join("adapter_config.json"), config).unwrap();
    let args = ["ask", "--model", model, "--adapter", broken.to_str().unwrap(), question];
    let output = finagent(home.path(), &args, &env);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("broken-adapter") && message.contains("shape"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}
