//! Determinism, speed and image-statistics properties of the renderer.

use synthetic_places::{Condition, Role, World, WorldConfig, fnv1a64};

/// FNV-1a 64 of the raw RGB bytes of four renders of `WorldConfig::tiny()` (seed 7), computed
/// once on x86_64 Linux and committed. Only IEEE-exact operations feed the pixels (our own
/// sin/cos/exp/ln, no libm), so these hold on every platform; a change means the renderer
/// changed, and then the constants must be regenerated on purpose
/// (`SYNTH_PRINT_HASHES=1 cargo test -p synthetic-places --test determinism -- --nocapture`).
const EXPECTED: [(usize, Role, usize, Condition, u64); 4] = [
    (0, Role::Database, 0, Condition::Day, 0xd650_6a69_3870_4629),
    (1, Role::Query, 0, Condition::Day, 0x8f22_21d7_3f51_8252),
    (2, Role::Tokyo, 0, Condition::Sunset, 0x0f08_cc2e_752e_c500),
    (
        3,
        Role::NightQuery,
        0,
        Condition::Night,
        0xefc1_3de2_e082_a473,
    ),
];

#[test]
fn renders_match_committed_hashes() {
    let world = World::new(&WorldConfig::tiny()).unwrap();
    let print = std::env::var_os("SYNTH_PRINT_HASHES").is_some();
    let mut bad = Vec::new();
    for &(place, role, index, cond, expected) in &EXPECTED {
        let img = world.render(place, role, index, cond).unwrap();
        let h = fnv1a64(img.as_raw());
        if print {
            println!("({place}, Role::{role:?}, {index}, Condition::{cond:?}, {h:#018x}),");
        }
        if h != expected {
            bad.push(format!(
                "place {place} {role:?} {cond:?}: got {h:#018x}, expected {expected:#018x}"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn same_seed_same_bytes_whatever_the_thread_count() {
    let world = World::new(&WorldConfig::tiny()).unwrap();
    let a = world
        .render(1, Role::NightQuery, 0, Condition::Night)
        .unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = one_thread.install(|| {
        world
            .render(1, Role::NightQuery, 0, Condition::Night)
            .unwrap()
    });
    assert_eq!(a, b);
    // a rebuilt world is the same world
    let again = World::new(&WorldConfig::tiny()).unwrap();
    assert_eq!(
        a,
        again
            .render(1, Role::NightQuery, 0, Condition::Night)
            .unwrap()
    );
    // and another seed is another world
    let other = World::new(&WorldConfig {
        seed: 8,
        ..WorldConfig::tiny()
    })
    .unwrap();
    assert_ne!(
        a,
        other
            .render(1, Role::NightQuery, 0, Condition::Night)
            .unwrap()
    );
}

fn luma_stats(img: &image::RgbImage) -> (f64, f64) {
    let l: Vec<f64> = img
        .pixels()
        .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
        .collect();
    let mean = l.iter().sum::<f64>() / l.len() as f64;
    let var = l.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / l.len() as f64;
    (mean, var.sqrt())
}

/// Night is darker than day and sunset sits in between, for every place of the tiny world
/// (averaged over places, so a single lamp-lit close-up cannot flip the order).
#[test]
fn night_is_darker_than_sunset_darker_than_day() {
    let world = World::new(&WorldConfig::tiny()).unwrap();
    let mut m = [0.0; 3];
    for p in 0..world.places().len() {
        for (k, cond) in [Condition::Day, Condition::Sunset, Condition::Night]
            .into_iter()
            .enumerate()
        {
            m[k] += luma_stats(&world.render(p, Role::Tokyo, 0, cond).unwrap()).0;
        }
    }
    assert!(
        m[0] > m[1] && m[1] > m[2],
        "mean luma day/sunset/night sums {m:?}"
    );
}

/// Tiny-image retrieval by day must work far above chance (the places are distinct), which is
/// the precondition for a meaningful day/night gap.
#[test]
fn day_queries_find_their_place_with_tiny_images() {
    let cfg = WorldConfig {
        places: 8,
        places_per_street: 4,
        ..WorldConfig::tiny()
    };
    let world = World::new(&cfg).unwrap();
    let desc = |img: image::RgbImage| -> Vec<f64> {
        let small = image::imageops::resize(&img, 16, 12, image::imageops::FilterType::Triangle);
        let v: Vec<f64> = small.as_raw().iter().map(|&x| x as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let c: Vec<f64> = v.iter().map(|x| x - mean).collect();
        let n = c.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
        c.into_iter().map(|x| x / n).collect()
    };
    let mut db = Vec::new();
    for p in 0..cfg.places {
        for v in 0..cfg.db_views {
            db.push((
                p,
                desc(world.render(p, Role::Database, v, Condition::Day).unwrap()),
            ));
        }
    }
    let mut hits = 0;
    for p in 0..cfg.places {
        let q = desc(world.render(p, Role::Query, 0, Condition::Day).unwrap());
        let best = db
            .iter()
            .max_by(|a, b| {
                let sa: f64 = a.1.iter().zip(&q).map(|(x, y)| x * y).sum();
                let sb: f64 = b.1.iter().zip(&q).map(|(x, y)| x * y).sum();
                sa.total_cmp(&sb)
            })
            .unwrap();
        hits += (best.0 == p) as usize;
    }
    // chance is 1/8; a raw 16×12 thumbnail is a weak descriptor, so only ask for clearly above it
    assert!(hits >= 3, "{hits}/8 day queries retrieved their place");
}

#[test]
fn a_tiny_world_renders_in_a_few_seconds() {
    let world = World::new(&WorldConfig::tiny()).unwrap();
    let t = std::time::Instant::now();
    let mut n = 0;
    for p in 0..world.places().len() {
        for cond in [Condition::Day, Condition::Sunset, Condition::Night] {
            world.render(p, Role::Tokyo, 0, cond).unwrap();
            n += 1;
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} tiny renders in {s:.2} s = {:.1} images/s",
        n as f64 / s
    );
    assert!(s < 5.0, "{n} tiny renders took {s:.1} s");
}
