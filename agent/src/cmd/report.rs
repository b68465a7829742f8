//! `finagent report`: tables shaped like the FinLoRA paper's Table 3 and Tables 4/5, in Markdown
//! and CSV, and bar charts as SVG, over the `run.json` of `finagent eval` runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use trainer::eval::report::{
    bar_chart_svg, table3_csv, table3_markdown, table45_csv, table45_markdown, ChartMetric,
};
use trainer::eval::EvalRun;
use trainer::train::metrics::write_atomically;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folders of `finagent eval` runs, one configuration each.
    #[arg(value_name = "RUNS", required = true)]
    runs: Vec<PathBuf>,
    /// Folder for report.md, table3.{md,csv}, table45.{md,csv}, accuracy.svg and f1.svg.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(_home: Option<&Path>, args: Args) -> Result<()> {
    let mut runs = Vec::with_capacity(args.runs.len());
    for dir in &args.runs {
        let run = EvalRun::read(dir)
            .with_context(|| format!("{} is not a finished evaluation run", dir.display()))?;
        if runs.iter().any(|known: &EvalRun| known.name == run.name) {
            bail!("two runs are named {:?}; give them distinct names with `finagent eval --name`", run.name);
        }
        runs.push(run);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let table3 = table3_markdown(&runs);
    let table45 = table45_markdown(&runs);
    let files = [
        (
            "report.md",
            format!("# Evaluation report\n\n{table3}{table45}\n![accuracy](accuracy.svg)\n![f1](f1.svg)\n"),
        ),
        ("table3.md", table3),
        ("table3.csv", table3_csv(&runs)),
        ("table45.md", table45),
        ("table45.csv", table45_csv(&runs)),
        ("accuracy.svg", bar_chart_svg(&runs, ChartMetric::AccuracyFinLora)),
        ("f1.svg", bar_chart_svg(&runs, ChartMetric::F1Weighted)),
    ];
    for (name, text) in &files {
        write_atomically(&args.out.join(name), text.as_bytes())?;
    }
    outln!("{}", std::fs::read_to_string(args.out.join("report.md"))?.trim_end());
    Ok(())
}
