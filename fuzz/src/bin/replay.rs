//! Stable-toolchain runner for the fuzz targets: runs each target over its committed corpus
//! (`corpus/<target>/`, plus `artifacts/<target>/` when present), then over a bounded number
//! of random mutations of that corpus. Needs no nightly and no libFuzzer runtime flags.
//!
//! ```text
//! cargo run --release --bin replay                       # every target, 20 000 mutations each
//! cargo run --release --bin replay -- --seconds 30 b3     # one target for 30 s
//! cargo run --release --bin replay -- --iterations 0      # corpus only
//! ```
//!
//! A panic prints the target and the input (escaped), writes it to
//! `artifacts/<target>/replay-crash-<n>` and makes the exit status non-zero.
//!
//! The mutator is hand-written (a few lines) rather than a dependency: it only has to be good
//! enough for a smoke run on stable; the real search is libFuzzer's (`cargo fuzz run`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() {
    let mut iterations: u64 = 20_000;
    let mut seconds: Option<u64> = None;
    let mut seed: u64 = 0x5eed;
    let mut wanted = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => iterations = number(args.next()),
            "--seconds" => seconds = Some(number(args.next())),
            "--seed" => seed = number(args.next()),
            other => wanted.push(other.to_owned()),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Silence the default hook: a crash is reported once, below, with its input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashes = 0;
    for &(name, target) in otel_fuzz::TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mut corpus = read_dir(&root.join("corpus").join(name));
        corpus.extend(read_dir(&root.join("artifacts").join(name)));
        if corpus.is_empty() {
            corpus.push(Vec::new());
        }
        let mut rng = SmallRng::seed_from_u64(seed ^ name.len() as u64);
        let started = Instant::now();
        let deadline = seconds.map(|s| started + Duration::from_secs(s));
        let mut runs: u64 = 0;
        let mut found = 0;
        for input in corpus.clone() {
            runs += 1;
            found += run_one(&root, name, target, &input, found);
        }
        loop {
            let done = match deadline {
                Some(d) => Instant::now() >= d,
                None => runs >= iterations + corpus.len() as u64,
            };
            if done || found > 0 {
                break;
            }
            let input = mutate(&mut rng, &corpus);
            runs += 1;
            found += run_one(&root, name, target, &input, found);
        }
        println!(
            "{name:18} {runs:>10} executions in {:>6.1} s, {found} crashes ({} corpus files)",
            started.elapsed().as_secs_f64(),
            corpus.len()
        );
        crashes += found;
    }
    if crashes > 0 {
        std::process::exit(1);
    }
}

fn run_one(root: &Path, name: &str, target: fn(&[u8]), input: &[u8], n: usize) -> usize {
    if std::panic::catch_unwind(|| target(input)).is_ok() {
        return 0;
    }
    let dir = root.join("artifacts").join(name);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("replay-crash-{n}"));
    let _ = std::fs::write(&path, input);
    eprintln!(
        "CRASH in {name}: input {:?} saved to {}",
        String::from_utf8_lossy(input),
        path.display()
    );
    1
}

/// Largest input the mutator builds: well past every parser's limit (8192-byte baggage,
/// 4096-byte sanitized SQL), small enough to keep a run fast.
const MAX_INPUT: usize = 64 * 1024;

/// Bytes that matter to the parsers: separators, hex, flags, quotes, controls, non-UTF-8.
const INTERESTING: &[u8] = b"-,;:=%$'\"`\\/*#?@ \t\r\n\0\x1b\x7f\x80\xc3\xff0123456789abcdefABCDEFxXdSHMmun";

fn mutate(rng: &mut SmallRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        let len = data.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                let b = INTERESTING[rng.random_range(0..INTERESTING.len())];
                data.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(16));
                data.drain(i..i + n);
            }
            3 if len > 0 => {
                // Repeat a chunk many times: long fields, thousands of members or headers.
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let chunk = data[i..i + n].to_vec();
                for _ in 0..rng.random_range(1..=2000) {
                    if data.len() + n > MAX_INPUT {
                        break;
                    }
                    data.splice(i..i, chunk.iter().copied());
                }
            }
            4 => {
                // Splice in part of another seed.
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = rng.random_range(a..=other.len());
                    let i = rng.random_range(0..=len);
                    data.splice(i..i, other[a..b].iter().copied());
                }
            }
            5 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            6 if len > 0 => data.truncate(rng.random_range(0..len)),
            _ => {
                let i = rng.random_range(0..=len);
                data.insert(i, rng.random());
            }
        }
    }
    data.truncate(MAX_INPUT);
    data
}

fn read_dir(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn number(arg: Option<String>) -> u64 {
    arg.and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("expected a number after the flag");
        std::process::exit(2)
    })
}
