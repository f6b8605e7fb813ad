//! Reports: JSON fields, Markdown rows, and a PNG of the requested width whose legend lies below the chart.

use vpr_eval::{FirstHits, MethodResult, Positives, Report, TokyoSplit, tokyo_split_recall};

fn method(name: &str, shift: usize) -> MethodResult {
    // 6 queries, first hits at various ranks
    let pos = Positives {
        radius: 25.0,
        n_db: 50,
        lists: (0..6).map(|q| vec![(q * 3 + shift) as u32]).collect(),
    };
    let preds: Vec<Vec<u32>> = (0..6u32).map(|q| (q * 3..q * 3 + 20).collect()).collect();
    let hits = FirstHits::new(&preds, &pos).unwrap();
    let ns = [1, 5, 10, 20];
    MethodResult {
        name: name.into(),
        recall: Some(hits.recall(&ns, None).unwrap()),
        splits: tokyo_split_recall(&hits, &ns).unwrap(),
        ..Default::default()
    }
}

#[test]
fn json_markdown_and_png() {
    let report = Report::new(
        "tokyo247",
        vec![method("day model", 0), method("night model", 6)],
    );
    let json = report.to_json();
    assert_eq!(json["dataset"], "tokyo247");
    assert_eq!(json["methods"][0]["recall"]["values"][0], 100.0);
    assert_eq!(json["methods"][1]["recall"]["values"][0], 0.0);
    assert_eq!(
        json["methods"][0]["splits"][2]["split"],
        TokyoSplit::Night.name()
    );
    let md = report.to_markdown();
    assert!(md.contains("| day model | 6 | 100.0 |"), "{md}");
    assert!(md.contains("night R@1"));
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("recall.png");
    report.plot_recall(&png, 640, 400).unwrap();
    let img = image::open(&png).unwrap();
    // the chart's 400 rows, then a legend band of 18 rows per curve (2 methods × (overall +
    // 3 splits)) and one more
    assert_eq!((img.width(), img.height()), (640, 400 + 18 * 9));
    let rgb = img.to_rgb8();
    // the legend is below the chart: its band has the curves' colours
    let coloured = (400..400 + 18 * 8)
        .flat_map(|y| (60..90).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = rgb.get_pixel(x, y).0;
            p != [255, 255, 255] && !(p[0] == p[1] && p[1] == p[2])
        })
        .count();
    assert!(coloured > 8 * 20, "{coloured}");
    // not a blank canvas: the curves and text put non-white pixels on it
    let non_white = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(non_white > 2000, "{non_white}");
    let jpath = dir.path().join("r.json");
    report.write_json(&jpath).unwrap();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(jpath).unwrap()).unwrap();
    assert_eq!(back, json);
    assert!(
        Report::new("x", vec![])
            .plot_recall(dir.path().join("e.png"), 10, 10)
            .is_err()
    );
}
