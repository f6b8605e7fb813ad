//! A seeded mutation fuzzer for the workspace's parsers of user-controlled bytes (issue 15).
//!
//! Each parser's test (`crates/*/tests/fuzz.rs`) hands [`Fuzz`] a few valid inputs written by
//! the crate's own writers or taken from its fixtures, and a check that parses one input and
//! states the property: `Ok`, or a typed error (naming the file where the parser reads one).
//! The check returns `Ok(true)` when the parser accepted the input, `Ok(false)` when it refused
//! it with a proper error, and `Err(complaint)` when the property does not hold.
//! [`Fuzz::run`] derives every case from `(seed, case index)` alone, so any finding replays
//! with `NIGHTVISION_FUZZ_SEED=… NIGHTVISION_FUZZ_CASE=…`, and mutates a seed input with bit
//! flips, byte changes, truncations, insertions, deletions, duplicated chunks, huge values in
//! length fields (binary and decimal), repeated tokens (deep nesting) and splices, or draws pure
//! random bytes. A case fails when the parser panics (caught with `catch_unwind`), when the
//! check rejects its result, when it takes longer than [`Fuzz::slow_after`], or — with
//! [`TrackingAllocator`] installed as the test binary's global allocator — when it allocates more
//! than a small multiple of the input's size (a fixed allowance plus a factor per input byte).
//! A single request above [`HARD_CAP`] is refused (the allocation fails, which aborts unless the
//! parser handles it) after printing the parser, seed and case, so even an abort names its case.
//!
//! Environment: `NIGHTVISION_FUZZ_CASES` (cases per parser, default [`DEFAULT_CASES`]),
//! `NIGHTVISION_FUZZ_SEED` (decimal or `0x…`, default [`DEFAULT_SEED`]),
//! `NIGHTVISION_FUZZ_CASE` (run only this case index), `NIGHTVISION_FUZZ_FINDINGS` (a folder
//! where the input of every finding is written as `<parser>-<seed>-<case>.bin`). Every run
//! prints one `fuzz-summary parser=… cases=… findings=…` line (`scripts/fuzz.sh` collects them).
//!
//! ```
//! use nightvision_core::testing::fuzz::Fuzz;
//!
//! let report = Fuzz::new("utf8", vec![b"hello".to_vec()])
//!     .cases(200)
//!     .run(|input| {
//!         // never panics: the property holds; `Ok(true)` counts the input as accepted
//!         Ok(std::str::from_utf8(input).is_ok())
//!     });
//! assert_eq!(report.cases, 200);
//! report.assert_clean();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Cases per parser when `NIGHTVISION_FUZZ_CASES` is not set.
pub const DEFAULT_CASES: usize = 10_000;
/// The base seed when `NIGHTVISION_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x15_F022;
/// The largest single allocation a fuzz case may request (1 GiB); larger ones are refused.
pub const HARD_CAP: usize = 1 << 30;

/// Integers that break length fields: boundaries of every width, 4×10¹² (the issue's row
/// count), 2⁶², and the maxima.
pub const HUGE_INTS: [u64; 16] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    4_000_000_000_000,
    1 << 40,
    1 << 62,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

/// The same as decimal text, plus what a text parser may choke on.
pub const HUGE_TEXT: [&str; 14] = [
    "0",
    "-1",
    "4000000000000",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e308",
    "1e999",
    "-0",
    "nan",
    "99999999999999999999999999999999999999999999999999999999999999999999",
];

/// Reads `NIGHTVISION_FUZZ_CASES` (default [`DEFAULT_CASES`]).
pub fn env_cases() -> usize {
    std::env::var("NIGHTVISION_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Reads `NIGHTVISION_FUZZ_SEED` (decimal or `0x…`; default [`DEFAULT_SEED`]).
pub fn env_seed() -> u64 {
    std::env::var("NIGHTVISION_FUZZ_SEED")
        .ok()
        .and_then(|v| parse_u64(&v))
        .unwrap_or(DEFAULT_SEED)
}

fn parse_u64(v: &str) -> Option<u64> {
    let v = v.trim().replace('_', "");
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// What went wrong in one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// The parser panicked.
    Panic,
    /// The check rejected the result (e.g. an error that does not name the file).
    Property,
    /// The case took longer than [`Fuzz::slow_after`].
    Slow,
    /// The case allocated more than its limit.
    Alloc,
}

/// One failing case.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The case index (replay with `NIGHTVISION_FUZZ_CASE`).
    pub case: usize,
    /// The base seed (replay with `NIGHTVISION_FUZZ_SEED`).
    pub seed: u64,
    /// What kind of failure.
    pub kind: FindingKind,
    /// The panic message, the check's complaint, the time or the bytes allocated.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
}

/// The outcome of [`Fuzz::run`].
#[derive(Debug, Clone)]
pub struct Report {
    /// The parser's name.
    pub name: String,
    /// The base seed the run was derived from (`NIGHTVISION_FUZZ_SEED`).
    pub seed: u64,
    /// Cases run.
    pub cases: usize,
    /// Cases the parser accepted (the check returned `Ok(true)`); the others were refused with
    /// a proper error, or are findings.
    pub accepted: usize,
    /// Failing cases.
    pub findings: Vec<Finding>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The slowest case.
    pub slowest: Duration,
    /// The largest growth of allocated bytes in one case (0 without [`TrackingAllocator`]).
    pub peak_alloc: usize,
}

impl Report {
    /// Panics with every finding (case, seed, kind, message, the input's first bytes) if there
    /// is any.
    pub fn assert_clean(&self) {
        if self.findings.is_empty() {
            return;
        }
        let mut s = format!(
            "fuzz {}: {} of {} cases failed (seed {:#x}):",
            self.name,
            self.findings.len(),
            self.cases,
            self.seed
        );
        for f in self.findings.iter().take(20) {
            let _ = write!(
                s,
                "\n  case {} ({:?}): {} — {} bytes: {}",
                f.case,
                f.kind,
                f.message,
                f.input.len(),
                hex_head(&f.input, 48)
            );
        }
        let _ = write!(
            s,
            "\nreplay one with NIGHTVISION_FUZZ_SEED={:#x} NIGHTVISION_FUZZ_CASE=<case>",
            self.seed
        );
        panic!("{s}");
    }
}

fn hex_head(b: &[u8], n: usize) -> String {
    let mut s: String = b.iter().take(n).map(|x| format!("{x:02x}")).collect();
    if b.len() > n {
        s.push('…');
    }
    s
}

/// A mutation fuzzer for one parser; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Fuzz {
    name: String,
    seeds: Vec<Vec<u8>>,
    tokens: Vec<Vec<u8>>,
    cases: usize,
    base_seed: u64,
    seed: u64,
    max_len: usize,
    alloc_fixed: usize,
    alloc_per_byte: usize,
    slow: Duration,
}

impl Fuzz {
    /// A fuzzer named `name` (it labels the summary and the findings) starting from the valid
    /// inputs `seeds`; cases and seed from the environment.
    pub fn new(name: &str, seeds: Vec<Vec<u8>>) -> Self {
        let base = env_seed();
        Self {
            name: name.to_string(),
            seeds,
            tokens: Vec::new(),
            cases: env_cases(),
            base_seed: base,
            // every parser draws its own stream from the base seed
            seed: base ^ fnv1a(name.as_bytes()),
            max_len: 1 << 20,
            alloc_fixed: 16 << 20,
            alloc_per_byte: 64,
            slow: Duration::from_secs(2),
        }
    }

    /// Format tokens the mutator inserts (repeated up to thousands of times: deep nesting,
    /// long runs of an opcode).
    pub fn tokens(mut self, tokens: &[&[u8]]) -> Self {
        self.tokens = tokens.iter().map(|t| t.to_vec()).collect();
        self
    }

    /// Overrides the number of cases (the environment's otherwise).
    pub fn cases(mut self, cases: usize) -> Self {
        self.cases = cases;
        self
    }

    /// Allocation limit of a case: `fixed` bytes plus `per_byte` per input byte (default
    /// 16 MiB + 64 × the input).
    pub fn alloc_limit(mut self, fixed: usize, per_byte: usize) -> Self {
        self.alloc_fixed = fixed;
        self.alloc_per_byte = per_byte;
        self
    }

    /// A case slower than this is a finding (default 2 s).
    pub fn slow_after(mut self, d: Duration) -> Self {
        self.slow = d;
        self
    }

    /// The input of case `case`.
    pub fn input(&self, case: usize) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(case as u64);
        self.generate(&mut rng)
    }

    /// Runs the cases: `check` parses one input and returns whether it was accepted, or
    /// `Err(complaint)` when the property does not hold. Prints the `fuzz-summary` line and returns the report (call
    /// [`Report::assert_clean`] to fail the test on findings).
    pub fn run<F: FnMut(&[u8]) -> Result<bool, String>>(&self, mut check: F) -> Report {
        install_panic_hook();
        let only: Option<usize> = std::env::var("NIGHTVISION_FUZZ_CASE")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        let findings_dir = std::env::var_os("NIGHTVISION_FUZZ_FINDINGS");
        let start = Instant::now();
        let mut report = Report {
            name: self.name.clone(),
            seed: self.base_seed,
            cases: 0,
            accepted: 0,
            findings: Vec::new(),
            elapsed: Duration::ZERO,
            slowest: Duration::ZERO,
            peak_alloc: 0,
        };
        let range = match only {
            Some(c) => c..c + 1,
            None => 0..self.cases,
        };
        for case in range {
            let input = self.input(case);
            let limit = self
                .alloc_fixed
                .saturating_add(input.len().saturating_mul(self.alloc_per_byte));
            CASE_LABEL.with(|l| {
                let mut l = l.borrow_mut();
                l.clear();
                let _ = write!(
                    l,
                    "fuzz {} seed {:#x} case {case}",
                    self.name, self.base_seed
                );
            });
            IN_CASE.with(|f| f.set(true));
            arm();
            let t = Instant::now();
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
            let took = t.elapsed();
            let grew = disarm();
            IN_CASE.with(|f| f.set(false));
            report.cases += 1;
            report.slowest = report.slowest.max(took);
            report.peak_alloc = report.peak_alloc.max(grew);
            let mut failures = Vec::new();
            match outcome {
                Ok(Ok(accepted)) => report.accepted += usize::from(accepted),
                Ok(Err(complaint)) => failures.push((FindingKind::Property, complaint)),
                Err(_) => {
                    let msg = LAST_PANIC.with(|m| m.borrow_mut().take());
                    failures.push((
                        FindingKind::Panic,
                        msg.unwrap_or_else(|| "panic without a message".into()),
                    ))
                }
            }
            if took > self.slow {
                failures.push((FindingKind::Slow, format!("took {took:?}")));
            }
            if grew > limit {
                failures.push((
                    FindingKind::Alloc,
                    format!(
                        "allocated {grew} bytes for a {}-byte input (limit {limit})",
                        input.len()
                    ),
                ));
            }
            for (kind, message) in failures {
                report.findings.push(Finding {
                    case,
                    seed: self.base_seed,
                    kind,
                    message,
                    input: input.clone(),
                });
            }
        }
        report.elapsed = start.elapsed();
        if let Some(dir) = findings_dir {
            let dir = std::path::PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            for f in &report.findings {
                let _ = std::fs::write(
                    dir.join(format!("{}-{:#x}-{}.bin", self.name, f.seed, f.case)),
                    &f.input,
                );
            }
        }
        // on a line of its own (libtest's quiet mode prints a dot per test before it)
        println!(
            "\nfuzz-summary parser={} cases={} accepted={} findings={} seed={:#x} seconds={:.2} slowest_ms={:.1} peak_alloc={}{}",
            self.name,
            report.cases,
            report.accepted,
            report.findings.len(),
            self.base_seed,
            report.elapsed.as_secs_f64(),
            report.slowest.as_secs_f64() * 1e3,
            report.peak_alloc,
            if tracking_installed() {
                ""
            } else {
                " (allocations untracked)"
            }
        );
        report
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let roll = rng.random_range(0..100u32);
        if roll < 3 || self.seeds.is_empty() {
            // pure random bytes
            let n = rng.random_range(0..1024usize);
            let mut v = vec![0u8; n];
            rng.fill_bytes(&mut v);
            return v;
        }
        if roll < 4 {
            return Vec::new();
        }
        let mut v = self.seeds[rng.random_range(0..self.seeds.len())].clone();
        // mostly one or two mutations, sometimes many
        let n = if rng.random_bool(0.7) {
            rng.random_range(1..=2)
        } else {
            rng.random_range(3..=12)
        };
        for _ in 0..n {
            self.mutate(&mut v, rng);
            v.truncate(self.max_len);
        }
        v
    }

    fn mutate(&self, v: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
        let pos = |rng: &mut ChaCha8Rng, len: usize| {
            if len == 0 {
                0
            } else {
                rng.random_range(0..len)
            }
        };
        match rng.random_range(0..13u32) {
            // flip a bit
            0 | 1 if !v.is_empty() => {
                let i = pos(rng, v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            // a random byte, or a boundary byte
            2 if !v.is_empty() => {
                let i = pos(rng, v.len());
                v[i] = rng.random();
            }
            3 if !v.is_empty() => {
                let i = pos(rng, v.len());
                v[i] = [0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'\n'][rng.random_range(0..8)];
            }
            // truncate
            4 => {
                let n = pos(rng, v.len() + 1);
                v.truncate(n);
            }
            // insert random bytes
            5 => {
                let i = pos(rng, v.len() + 1);
                let n = rng.random_range(1..=32);
                let mut b = vec![0u8; n];
                rng.fill_bytes(&mut b);
                v.splice(i..i, b);
            }
            // delete a range
            6 if !v.is_empty() => {
                let i = pos(rng, v.len());
                let n = rng.random_range(1..=(v.len() - i).min(64));
                v.drain(i..i + n);
            }
            // duplicate a chunk somewhere else
            7 if !v.is_empty() => {
                let i = pos(rng, v.len());
                let n = rng.random_range(1..=(v.len() - i).min(256));
                let chunk = v[i..i + n].to_vec();
                let times = if rng.random_bool(0.9) {
                    1
                } else {
                    rng.random_range(2..64)
                };
                let at = pos(rng, v.len() + 1);
                for _ in 0..times {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            // a huge value in a binary length field (1, 2, 4 or 8 bytes, either endianness)
            8 | 9 if !v.is_empty() => {
                let x = HUGE_INTS[rng.random_range(0..HUGE_INTS.len())];
                let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
                let bytes = if rng.random_bool(0.8) {
                    x.to_le_bytes()
                } else {
                    x.to_be_bytes()
                };
                let field = if rng.random_bool(0.8) {
                    &bytes[..width]
                } else {
                    &bytes[8 - width..]
                };
                let i = pos(rng, v.len());
                let end = (i + width).min(v.len());
                v.splice(i..end, field.iter().copied());
            }
            // a huge (or odd) number in place of a decimal one in text
            10 => {
                let digits: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit()).collect();
                let text = HUGE_TEXT[rng.random_range(0..HUGE_TEXT.len())].as_bytes();
                if digits.is_empty() {
                    let i = pos(rng, v.len() + 1);
                    v.splice(i..i, text.iter().copied());
                } else {
                    let mut a = digits[rng.random_range(0..digits.len())];
                    let mut b = a + 1;
                    while a > 0 && v[a - 1].is_ascii_digit() {
                        a -= 1;
                    }
                    while b < v.len() && v[b].is_ascii_digit() {
                        b += 1;
                    }
                    v.splice(a..b, text.iter().copied());
                }
            }
            // a format token, sometimes repeated thousands of times
            11 if !self.tokens.is_empty() => {
                let t = &self.tokens[rng.random_range(0..self.tokens.len())];
                let times = match rng.random_range(0..10u32) {
                    0..=6 => 1,
                    7 | 8 => rng.random_range(2..64),
                    _ => rng.random_range(64..8192),
                };
                let i = pos(rng, v.len() + 1);
                let run: Vec<u8> = t.iter().copied().cycle().take(t.len() * times).collect();
                v.splice(i..i, run);
            }
            // splice with another seed
            12 if !self.seeds.is_empty() => {
                let other = &self.seeds[rng.random_range(0..self.seeds.len())];
                let a = pos(rng, v.len() + 1);
                let b = pos(rng, other.len() + 1);
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            _ => {
                // the chosen mutation needs bytes (or tokens) there are none of: append one
                v.push(rng.random());
            }
        }
    }
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes a case's input to `path` for a parser that reads files: removes the old file first,
/// because truncating a file in place makes ext4 (`auto_da_alloc`) flush it on close — a
/// millisecond per case instead of microseconds.
pub fn write_case(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Checks that an error's message names the file `path` (its file name at least).
pub fn names_file(err: &dyn std::fmt::Display, path: &std::path::Path) -> Result<(), String> {
    let msg = err.to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if msg.contains(&name) {
        Ok(())
    } else {
        Err(format!("error does not name {name}: {msg}"))
    }
}

/// Runs `f` with allocations tracked on this thread: its result, wall time and the largest
/// growth of allocated bytes (0 without [`TrackingAllocator`]).
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    arm();
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    (out, took, disarm())
}

thread_local! {
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static CASE_LABEL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Keeps the panic messages of fuzz cases off stderr (they go into the report); other panics
/// reach the previous hook unchanged.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                let payload = info.payload();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|m| *m.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

// ---- allocation tracking -------------------------------------------------------------------

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // allocator state: const-initialised `Cell`s without destructors (no allocation on access)
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Whether [`TrackingAllocator`] is the global allocator of this binary (it has allocated).
pub fn tracking_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

fn arm() {
    let _ = LIVE.try_with(|l| l.set(0));
    let _ = PEAK.try_with(|p| p.set(0));
    let _ = ARMED.try_with(|a| a.set(true));
}

fn disarm() -> usize {
    let _ = ARMED.try_with(|a| a.set(false));
    PEAK.try_with(|p| p.get().max(0) as usize).unwrap_or(0)
}

/// A global allocator (the system's) that tracks, per thread and while a fuzz case runs, the
/// growth of allocated bytes, and refuses single requests above [`HARD_CAP`]. Install it in a
/// fuzz test binary:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: nightvision_core::testing::fuzz::TrackingAllocator =
///     nightvision_core::testing::fuzz::TrackingAllocator;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackingAllocator;

/// Notes `grow` bytes more (or fewer) on this thread; `false` to refuse the request.
fn note(grow: isize, request: usize) -> bool {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    if !ARMED.try_with(Cell::get).unwrap_or(false) {
        return true;
    }
    if request > HARD_CAP {
        report_refusal(request);
        return false;
    }
    let _ = LIVE.try_with(|l| {
        let now = l.get() + grow;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    true
}

/// Prints which case asked for `request` bytes, without allocating.
fn report_refusal(request: usize) {
    use std::io::Write as _;
    let mut buf = [0u8; 256];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        let k = s.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&s[..k]);
        n += k;
    };
    put(b"\nfuzz: refused an allocation of ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut x = request;
    loop {
        i -= 1;
        digits[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(b" bytes in ");
    let _ = CASE_LABEL.try_with(|l| {
        if let Ok(l) = l.try_borrow() {
            put(l.as_bytes());
        }
    });
    put(b"\n");
    let _ = std::io::stderr().write_all(&buf[..n]);
}

// SAFETY: every method forwards to `System` with the caller's layout; the bookkeeping touches
// only thread-local `Cell`s, which neither allocate nor unwind.
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size() as isize, layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size() as isize, layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = ARMED.try_with(|a| {
            if a.get() {
                let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
            }
        });
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size as isize - layout.size() as isize, new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
