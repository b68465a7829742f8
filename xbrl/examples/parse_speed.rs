//! Times the instance and inline readers on the given files and prints one JSON line per file:
//! `cargo run --release -p xbrl --example parse_speed -- FILE...` (`.htm` files are read as inline XBRL).

use std::time::{Duration, Instant};

/// Repeats each parse until this much time has passed, so small files still give stable rates.
const MIN_MEASURE: Duration = Duration::from_millis(500);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let is_inline = path.ends_with(".htm") || path.ends_with(".html");
        let parse = |bytes: &[u8]| {
            if is_inline {
                xbrl::inline::parse_inline(&path, bytes)
            } else {
                xbrl::instance::parse_instance(&path, bytes)
            }
        };
        let (doc, issues) = parse(&bytes)?;
        let started = Instant::now();
        let mut runs = 0u32;
        while started.elapsed() < MIN_MEASURE {
            parse(&bytes)?;
            runs += 1;
        }
        let seconds = started.elapsed().as_secs_f64() / f64::from(runs);
        let record = serde_json::json!({
            "file": path,
            "bytes": bytes.len(),
            "facts": doc.facts.len(),
            "issues": issues.len(),
            "seconds": seconds,
            "mb_per_s": bytes.len() as f64 / 1e6 / seconds,
            "facts_per_s": doc.facts.len() as f64 / seconds,
        });
        println!("{record}");
    }
    Ok(())
}
