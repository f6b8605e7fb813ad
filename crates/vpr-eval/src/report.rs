//! Reports: a JSON result, a Markdown table, and a PNG plot of Recall@N curves for one or several
//! methods side by side.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::metrics::{MapResult, Recall, RevisitedResult, SplitRecall};
use crate::stats::{PairedComparison, RecallCi};

/// A paired comparison of a method (B) with another one (A) on the same queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The name of method A, the reference (a baseline, the off-the-shelf network).
    pub against: String,
    /// `R@N(this) − R@N(against)` with its paired-bootstrap interval and McNemar's test.
    pub result: PairedComparison,
}

/// The results of one method on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MethodResult {
    /// Method name (a table row, a plot legend entry).
    pub name: String,
    /// Recall@N over all queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<Recall>,
    /// Recall@N over all queries with its 95 % bootstrap interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall_ci: Option<RecallCi>,
    /// Paired comparisons with reference methods on the same queries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
    /// Recall@N per query split (e.g. Tokyo 24/7 day / sunset / night).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<SplitRecall>,
    /// Old-protocol mAP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<MapResult>,
    /// Revisited Easy / Medium / Hard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revisited: Option<RevisitedResult>,
}

/// Several methods evaluated on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Report {
    /// Dataset name.
    pub dataset: String,
    /// One entry per method.
    pub methods: Vec<MethodResult>,
}

impl Report {
    /// A report of `methods` on `dataset`.
    pub fn new(dataset: impl Into<String>, methods: Vec<MethodResult>) -> Self {
        Self {
            dataset: dataset.into(),
            methods,
        }
    }

    /// The report as JSON (NaN APs become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self).map_err(|source| EvalError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        std::fs::write(path, text).map_err(|e| EvalError::io(path, e))
    }

    /// Markdown tables: Recall@N (and per split), mAP, revisited mAP and mP@k, in percent with
    /// one (recall) or two (mAP) decimals.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("## {}\n\n", self.dataset);
        // Recall@N
        let ns: Vec<usize> = self
            .methods
            .iter()
            .filter_map(|m| m.recall.as_ref())
            .flat_map(|r| r.n.iter().copied())
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        if !ns.is_empty() {
            let split_names: Vec<String> = self
                .methods
                .iter()
                .flat_map(|m| m.splits.iter().map(|s| s.split.clone()))
                .fold(Vec::new(), |mut v, s| {
                    if !v.contains(&s) {
                        v.push(s);
                    }
                    v
                });
            let mut groups = vec![(String::from("all"), None)];
            groups.extend(split_names.into_iter().map(|s| (s.clone(), Some(s))));
            out.push_str("| method | queries |");
            for (g, _) in &groups {
                for n in &ns {
                    if g == "all" {
                        out.push_str(&format!(" R@{n} |"));
                    } else {
                        out.push_str(&format!(" {g} R@{n} |"));
                    }
                }
            }
            out.push('\n');
            out.push_str(&"|---".repeat(2 + groups.len() * ns.len()));
            out.push_str("|\n");
            for m in &self.methods {
                let Some(all) = &m.recall else { continue };
                out.push_str(&format!("| {} | {} |", m.name, all.n_queries));
                for (_, split) in &groups {
                    let r = match split {
                        None => Some(all),
                        Some(s) => m.splits.iter().find(|x| &x.split == s).map(|x| &x.recall),
                    };
                    let ci = if split.is_none() {
                        m.recall_ci.as_ref()
                    } else {
                        None
                    };
                    for n in &ns {
                        let v =
                            r.and_then(|r| r.n.iter().position(|x| x == n).map(|i| r.values[i]));
                        let interval = ci.and_then(|c| {
                            c.n.iter()
                                .position(|x| x == n)
                                .map(|i| (c.lower[i], c.upper[i]))
                        });
                        match (v, interval) {
                            (Some(v), Some((lo, hi))) => {
                                out.push_str(&format!(" {v:.1} [{lo:.1}, {hi:.1}] |"))
                            }
                            (Some(v), None) => out.push_str(&format!(" {v:.1} |")),
                            (None, _) => out.push_str(" – |"),
                        }
                    }
                }
                out.push('\n');
            }
            out.push('\n');
        }
        // paired comparisons
        if self.methods.iter().any(|m| !m.comparisons.is_empty()) {
            out.push_str(&comparison_table(&self.methods));
        }
        // old protocol mAP
        if self.methods.iter().any(|m| m.map.is_some()) {
            let kappas = self
                .methods
                .iter()
                .find_map(|m| m.map.as_ref().map(|x| x.kappas.clone()))
                .unwrap_or_default();
            out.push_str("| method | mAP |");
            for k in &kappas {
                out.push_str(&format!(" mP@{k} |"));
            }
            out.push('\n');
            out.push_str(&"|---".repeat(2 + kappas.len()));
            out.push_str("|\n");
            for m in &self.methods {
                if let Some(r) = &m.map {
                    out.push_str(&format!("| {} | {:.2} |", m.name, r.map * 100.0));
                    for v in &r.mpk {
                        out.push_str(&format!(" {:.2} |", v * 100.0));
                    }
                    out.push('\n');
                }
            }
            out.push('\n');
        }
        // revisited
        if self.methods.iter().any(|m| m.revisited.is_some()) {
            out.push_str("| method | E | M | H | mP@k E | mP@k M | mP@k H |\n|---|---|---|---|---|---|---|\n");
            for m in &self.methods {
                if let Some(r) = &m.revisited {
                    let mpk = |x: &MapResult| {
                        x.kappas
                            .iter()
                            .zip(&x.mpk)
                            .map(|(k, v)| format!("@{k} {:.2}", v * 100.0))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    out.push_str(&format!(
                        "| {} | {:.2} | {:.2} | {:.2} | {} | {} | {} |\n",
                        m.name,
                        r.easy.map * 100.0,
                        r.medium.map * 100.0,
                        r.hard.map * 100.0,
                        mpk(&r.easy),
                        mpk(&r.medium),
                        mpk(&r.hard)
                    ));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Draws the Recall@N curves of every method with recall (thick, with the 95 % interval as
    /// a vertical bar at each N where the method has one) and of its query splits (thin) into a
    /// PNG `width` wide: the chart is `height` tall, and the legend takes a band of 18 pixels per
    /// curve (plus 18) below it, so that it never covers a curve.
    pub fn plot_recall(&self, path: impl AsRef<Path>, width: u32, height: u32) -> Result<()> {
        let path = path.as_ref();
        let plot_err = |e: &dyn std::fmt::Display| EvalError::Plot {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        type Curve<'a> = (String, &'a Recall, bool, Option<&'a RecallCi>);
        let curves: Vec<Curve> = self
            .methods
            .iter()
            .flat_map(|m| {
                let mut v = Vec::new();
                if let Some(r) = &m.recall {
                    v.push((m.name.clone(), r, false, m.recall_ci.as_ref()));
                }
                for s in &m.splits {
                    v.push((format!("{} ({})", m.name, s.split), &s.recall, true, None));
                }
                v
            })
            .collect();
        if curves.is_empty() {
            return Err(EvalError::Empty {
                what: "set of Recall@N curves to plot".into(),
                path: Some(path.to_path_buf()),
            });
        }
        let max_n = curves
            .iter()
            .flat_map(|c| c.1.n.iter().copied())
            .max()
            .unwrap_or(1);
        let band = LEGEND_ROW * (curves.len() as u32 + 1);
        let root = BitMapBackend::new(path, (width, height + band)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let (upper, legend) = root.split_vertically(height);
        let mut chart = ChartBuilder::on(&upper)
            .caption(format!("Recall@N — {}", self.dataset), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..(max_n as f64 + 1.0), 0f64..100f64)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("N")
            .y_desc("Recall@N (%)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| plot_err(&e))?;
        let n_curves = curves.len().max(1) as f64;
        for (i, (name, r, dashed, ci)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            if let Some(ci) = ci {
                // a small horizontal offset per curve keeps overlapping bars apart
                let dx = 0.5 * (i as f64 + 0.5) / n_curves - 0.25;
                let bars =
                    ci.n.iter()
                        .zip(ci.lower.iter().zip(&ci.upper))
                        .map(|(&n, (&lo, &hi))| {
                            let x = n as f64 + dx;
                            PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1))
                        });
                chart.draw_series(bars).map_err(|e| plot_err(&e))?;
            }
            let pts: Vec<(f64, f64)> =
                r.n.iter()
                    .map(|&n| n as f64)
                    .zip(r.values.iter().copied())
                    .collect();
            let style = ShapeStyle::from(&color).stroke_width(if *dashed { 1 } else { 2 });
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(|e| plot_err(&e))?;
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| plot_err(&e))?;
            // the legend entry: a line of the curve's colour and width, then its name
            let y = (LEGEND_ROW * i as u32 + LEGEND_ROW / 2) as i32;
            legend
                .draw(&PathElement::new(vec![(60, y), (90, y)], style))
                .map_err(|e| plot_err(&e))?;
            legend
                .draw(&Text::new(
                    name.clone(),
                    (98, y - 7),
                    ("sans-serif", 14).into_font(),
                ))
                .map_err(|e| plot_err(&e))?;
        }
        root.present().map_err(|e| plot_err(&e))?;
        Ok(())
    }
}

/// Height in pixels of one legend entry below the chart of [`Report::plot_recall`].
const LEGEND_ROW: u32 = 18;

/// The Markdown table of every method's paired comparisons: `ΔR@N [lower, upper]` in percentage
/// points and McNemar's p-value on the R@1 hits.
fn comparison_table(methods: &[MethodResult]) -> String {
    let ns: Vec<usize> = methods
        .iter()
        .flat_map(|m| {
            m.comparisons
                .iter()
                .flat_map(|c| c.result.n.iter().copied())
        })
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    let mut out = String::from("| method | compared with |");
    for n in &ns {
        out.push_str(&format!(" ΔR@{n} [95 % CI] |"));
    }
    out.push_str(" McNemar R@1 (b / c) | p |\n");
    out.push_str(&"|---".repeat(4 + ns.len()));
    out.push_str("|\n");
    for m in methods {
        for c in &m.comparisons {
            let r = &c.result;
            out.push_str(&format!("| {} | {} |", m.name, c.against));
            for n in &ns {
                match r.n.iter().position(|x| x == n) {
                    Some(i) => out.push_str(&format!(
                        " {:+.1} [{:+.1}, {:+.1}] |",
                        r.diff[i], r.lower[i], r.upper[i]
                    )),
                    None => out.push_str(" – |"),
                }
            }
            out.push_str(&format!(
                " {} / {} | {} |\n",
                r.mcnemar.b,
                r.mcnemar.c,
                format_p(r.mcnemar.p_value)
            ));
        }
    }
    out.push('\n');
    out
}

/// A p-value with three significant digits, or `< 1e-12`.
fn format_p(p: f64) -> String {
    if p < 1e-12 {
        "< 1e-12".into()
    } else if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.3}")
    }
}
