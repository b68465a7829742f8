//! Tables and charts over evaluation runs, shaped like the FinLoRA paper's: Table 3 (accuracy and
//! F1 per dataset per configuration) and Tables 4/5 (batch size, memory, time, adapter size,
//! inference seconds per example), as Markdown and CSV, plus grouped bar charts as SVG.

use datasets::Task;

use crate::eval::{EvalMode, EvalRun, TaskMetrics};

/// One column group of Table 3: a run in one mode.
struct Configuration<'a> {
    name: String,
    run: &'a EvalRun,
    mode: EvalMode,
}

fn configurations(runs: &[EvalRun]) -> Vec<Configuration<'_>> {
    let mut configurations = Vec::new();
    for run in runs {
        for mode in EvalMode::ALL {
            if run.results.iter().any(|result| result.mode == mode) {
                let name = match mode {
                    EvalMode::Generate => run.name.clone(),
                    EvalMode::Score => format!("{} (score)", run.name),
                    EvalMode::ScoreMean => format!("{} (score, mean per token)", run.name),
                    EvalMode::ScoreCalibrated => format!("{} (score, calibrated)", run.name),
                };
                configurations.push(Configuration { name, run, mode });
            }
        }
    }
    configurations
}

fn tasks(runs: &[EvalRun]) -> Vec<Task> {
    Task::ALL
        .into_iter()
        .filter(|task| runs.iter().any(|run| run.results.iter().any(|r| r.task == *task)))
        .collect()
}

impl Configuration<'_> {
    fn result(&self, task: Task) -> Option<&TaskMetrics> {
        self.run.results.iter().find(|result| result.task == task && result.mode == self.mode)
    }
}

/// Picks the accuracy and the F1 a Table 3 section shows.
type AccuracyAndF1 = fn(&TaskMetrics) -> (f64, f64);

/// Table 3 in Markdown: a row per dataset, an accuracy and an F1 column per configuration, once
/// with FinLoRA's scoring (what the paper prints) and once strictly.
pub fn table3_markdown(runs: &[EvalRun]) -> String {
    let configurations = configurations(runs);
    let tasks = tasks(runs);
    let mut out = String::new();
    let sections: [(&str, AccuracyAndF1); 2] = [
        ("FinLoRA scoring: accuracy (v2) / raw-response weighted F1", |m| {
            (m.accuracy_finlora, m.f1_finlora_raw)
        }),
        ("Strict scoring: normalised-label accuracy / weighted F1 (sklearn)", |m| {
            (m.accuracy_strict, m.f1_weighted)
        }),
    ];
    for (title, pick) in sections {
        out.push_str(&format!("### Table 3. {title}\n\n| Dataset |"));
        for configuration in &configurations {
            out.push_str(&format!(" {} Acc | {} F1 |", configuration.name, configuration.name));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|---:|".repeat(configurations.len()));
        out.push('\n');
        for &task in &tasks {
            out.push_str(&format!("| {task} |"));
            for configuration in &configurations {
                match configuration.result(task) {
                    Some(metrics) => {
                        let (accuracy, f1) = pick(metrics);
                        out.push_str(&format!(" {:.2} | {:.3} |", accuracy * 100.0, f1));
                    }
                    None => out.push_str(" - | - |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Table 3 in long form: one CSV line per configuration and dataset with every score.
pub fn table3_csv(runs: &[EvalRun]) -> String {
    let mut out = String::from(
        "configuration,dataset,mode,n_examples,accuracy_finlora,accuracy_finlora_v1,accuracy_strict,\
         f1_weighted,f1_finlora_raw,unparseable_share,seconds_per_example\n",
    );
    for configuration in configurations(runs) {
        for task in tasks(runs) {
            let Some(m) = configuration.result(task) else { continue };
            out.push_str(&format!(
                "{},{task},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}\n",
                csv_field(&configuration.name),
                m.mode,
                m.n_examples,
                m.accuracy_finlora,
                m.accuracy_finlora_v1,
                m.accuracy_strict,
                m.f1_weighted,
                m.f1_finlora_raw,
                m.unparseable_share,
                m.seconds_per_example
            ));
        }
    }
    out
}

/// The resource figures of one configuration (Tables 4 and 5).
struct Resources {
    bits: u32,
    batch_size: usize,
    peak_rss_bytes: u64,
    total_seconds: f64,
    adapter_bytes: u64,
    seconds_per_example: f64,
}

fn resources(configuration: &Configuration<'_>) -> Resources {
    let results: Vec<&TaskMetrics> =
        configuration.run.results.iter().filter(|result| result.mode == configuration.mode).collect();
    let n_examples: usize = results.iter().map(|result| result.n_examples).sum();
    let total_seconds: f64 =
        results.iter().map(|result| result.seconds_per_example * result.n_examples as f64).sum();
    Resources {
        bits: configuration.run.bits,
        batch_size: configuration.run.batch_size,
        peak_rss_bytes: configuration.run.peak_rss_bytes,
        total_seconds,
        adapter_bytes: configuration.run.adapter_bytes(),
        seconds_per_example: if n_examples == 0 { 0.0 } else { total_seconds / n_examples as f64 },
    }
}

/// Tables 4/5 in Markdown: per configuration, base bits, batch size, peak memory, inference time,
/// adapter size and inference seconds per example.
pub fn table45_markdown(runs: &[EvalRun]) -> String {
    let mut out = String::from(
        "### Tables 4/5. Resources\n\n| Configuration | Base bits | Batch size | Peak memory (MiB) | \
         Inference time (s) | Adapter size (MB) | Inference s/example |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for configuration in configurations(runs) {
        let r = resources(&configuration);
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.4} |\n",
            configuration.name,
            r.bits,
            r.batch_size,
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            r.total_seconds,
            r.adapter_bytes as f64 / 1e6,
            r.seconds_per_example
        ));
    }
    out
}

/// Tables 4/5 as CSV.
pub fn table45_csv(runs: &[EvalRun]) -> String {
    let mut out = String::from(
        "configuration,bits,batch_size,peak_rss_bytes,inference_seconds,adapter_bytes,seconds_per_example\n",
    );
    for configuration in configurations(runs) {
        let r = resources(&configuration);
        out.push_str(&format!(
            "{},{},{},{},{:.3},{},{:.6}\n",
            csv_field(&configuration.name),
            r.bits,
            r.batch_size,
            r.peak_rss_bytes,
            r.total_seconds,
            r.adapter_bytes,
            r.seconds_per_example
        ));
    }
    out
}

/// Which score a bar chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartMetric {
    /// FinLoRA v2 accuracy, in percent.
    AccuracyFinLora,
    /// Strict weighted F1.
    F1Weighted,
}

impl ChartMetric {
    fn value(self, metrics: &TaskMetrics) -> f64 {
        match self {
            ChartMetric::AccuracyFinLora => metrics.accuracy_finlora,
            ChartMetric::F1Weighted => metrics.f1_weighted,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ChartMetric::AccuracyFinLora => "Accuracy (FinLoRA v2) per dataset",
            ChartMetric::F1Weighted => "Weighted F1 (strict labels) per dataset",
        }
    }
}

const PALETTE: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// A grouped bar chart: a group per dataset, a bar per configuration, the y axis from 0 to 1.
pub fn bar_chart_svg(runs: &[EvalRun], metric: ChartMetric) -> String {
    const HEIGHT: f64 = 360.0;
    const MARGIN: f64 = 48.0;
    const BAR: f64 = 18.0;
    const LEGEND_STEP: f64 = 180.0;
    let configurations = configurations(runs);
    let tasks = tasks(runs);
    let group_width = BAR * configurations.len().max(1) as f64 + 24.0;
    let width = (2.0 * MARGIN + group_width * tasks.len().max(1) as f64)
        .max(2.0 * MARGIN + LEGEND_STEP * configurations.len() as f64);
    let plot_height = HEIGHT - 2.0 * MARGIN;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{HEIGHT}" font-family="sans-serif" font-size="12"><rect width="{width:.0}" height="{HEIGHT}" fill="white"/>"#
    );
    svg.push_str(&format!(r#"<text x="{MARGIN}" y="20">{}</text>"#, metric.title()));
    for tick in 0..=4 {
        let value = f64::from(tick) / 4.0;
        let y = HEIGHT - MARGIN - value * plot_height;
        svg.push_str(&format!(
            r##"<line x1="{MARGIN}" y1="{y:.1}" x2="{r:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{l:.1}" y="{t:.1}" text-anchor="end">{value:.2}</text>"##,
            r = width - MARGIN,
            l = MARGIN - 4.0,
            t = y + 4.0
        ));
    }
    for (task_idx, &task) in tasks.iter().enumerate() {
        let group_x = MARGIN + 12.0 + task_idx as f64 * group_width;
        for (config_idx, configuration) in configurations.iter().enumerate() {
            let Some(metrics) = configuration.result(task) else { continue };
            let value = metric.value(metrics).clamp(0.0, 1.0);
            let bar_height = value * plot_height;
            svg.push_str(&format!(
                r#"<rect x="{x:.1}" y="{y:.1}" width="{BAR}" height="{bar_height:.1}" fill="{color}"><title>{name}: {value:.4}</title></rect>"#,
                x = group_x + config_idx as f64 * BAR,
                y = HEIGHT - MARGIN - bar_height,
                color = PALETTE[config_idx % PALETTE.len()],
                name = xml_escape(&configuration.name)
            ));
        }
        svg.push_str(&format!(
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{task}</text>"#,
            x = group_x + BAR * configurations.len() as f64 / 2.0,
            y = HEIGHT - MARGIN + 16.0
        ));
    }
    for (config_idx, configuration) in configurations.iter().enumerate() {
        svg.push_str(&format!(
            r#"<rect x="{x:.1}" y="{y:.1}" width="10" height="10" fill="{color}"/><text x="{tx:.1}" y="{ty:.1}">{name}</text>"#,
            x = MARGIN + LEGEND_STEP * config_idx as f64,
            y = HEIGHT - MARGIN + 26.0,
            color = PALETTE[config_idx % PALETTE.len()],
            tx = MARGIN + LEGEND_STEP * config_idx as f64 + 14.0,
            ty = HEIGHT - MARGIN + 35.0,
            name = xml_escape(&configuration.name)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
