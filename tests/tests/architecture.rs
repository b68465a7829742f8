//! The crate graph is the architecture: checks that dependency arrows point the documented way.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Normal (non-dev) dependencies of every package, by name, transitively closed.
fn transitive_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let name = name_of[node["id"].as_str().unwrap()].to_string();
        let deps = node["deps"].as_array().unwrap().iter().filter(|dep| {
            dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|kind| kind["kind"].is_null() || kind["kind"] == "build")
        });
        let entry = direct.entry(name).or_default();
        for dep in deps {
            entry.insert(name_of[dep["pkg"].as_str().unwrap()].to_string());
        }
    }
    let mut closed = BTreeMap::new();
    for name in direct.keys() {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.clone()];
        while let Some(current) = stack.pop() {
            for dep in direct.get(&current).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        closed.insert(name.clone(), seen);
    }
    closed
}

fn assert_absent(graph: &BTreeMap<String, BTreeSet<String>>, krate: &str, forbidden: &[&str]) {
    let deps = graph.get(krate).unwrap_or_else(|| panic!("{krate} is not a workspace package"));
    for name in forbidden {
        assert!(
            !deps.contains(*name),
            "{krate} must not depend on {name}, but it does (directly or transitively)"
        );
    }
}

#[test]
fn dependency_arrows_point_one_way() {
    let graph = transitive_dependencies();
    let ml = ["candle-core", "candle-nn", "candle-transformers", "tokenizers", "cudarc", "safetensors"];
    // xbrl and taxonomy are leaves: no ML, no other finagent crate.
    assert_absent(&graph, "xbrl", &ml);
    assert_absent(&graph, "xbrl", &["taxonomy", "kernels", "datasets", "trainer", "agent"]);
    assert_absent(&graph, "taxonomy", &ml);
    assert_absent(&graph, "taxonomy", &["xbrl", "kernels", "datasets", "trainer", "agent"]);
    // datasets knows filings and tasks but no tensors.
    assert_absent(&graph, "datasets", &ml);
    assert_absent(&graph, "datasets", &["kernels", "trainer", "agent"]);
    // kernels knows only tensors.
    assert_absent(&graph, "kernels", &["xbrl", "taxonomy", "datasets", "trainer", "agent", "tantivy"]);
    // trainer knows models, kernels and datasets, never the app.
    assert_absent(&graph, "trainer", &["agent"]);
}
