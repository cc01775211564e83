//! Throughput of the pure core on one core: parse + validate + translate a 12-interface host
//! file (`xml-samples/host-twelve-interfaces.xml`), and the pieces on their own.
//!
//! Run: `cargo bench --bench translate` (prints documents per second; target >= 20,000).
//! A plain timing loop, not a statistics framework: the figure is a rate over ~1 s per case,
//! repeated 3 times, best kept, which is stable enough for a >= 10x margin check.

use nmiface::nm::{self, Target};
use nmiface::xml;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn rate(label: &str, mut f: impl FnMut()) -> f64 {
    // Warm up caches and the allocator.
    for _ in 0..200 {
        f();
    }
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(1000) {
            for _ in 0..100 {
                f();
            }
            n += 100;
        }
        best = best.max(n as f64 / start.elapsed().as_secs_f64());
    }
    println!("{label:<48} {best:>12.0} docs/s  ({:>7.1} us/doc)", 1e6 / best);
    best
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/xml-samples/host-twelve-interfaces.xml");
    let text = std::fs::read_to_string(path).expect("benchmark input");
    let doc = xml::parse_document("bench", &text).expect("valid input");
    // 12 interface definitions; NICs used as ports merge into their controllers.
    let defined = xml::write_host(&doc.host).0.matches("<interface type=").count();
    assert!(defined >= 12, "the benchmark input must define 12 interfaces, found {defined}");
    let target = Target::default();
    println!("input: xml-samples/host-twelve-interfaces.xml ({} bytes, {defined} interfaces)", text.len());
    let full = rate("parse + validate + translate (target >= 20000)", || {
        let d = xml::parse_document("bench", black_box(&text)).unwrap();
        black_box(nm::translate(&d.host, &d.sources, &target));
    });
    rate("parse + validate only", || {
        black_box(xml::parse_document("bench", black_box(&text)).unwrap());
    });
    rate("translate only", || {
        black_box(nm::translate(black_box(&doc.host), &doc.sources, &target));
    });
    let t = nm::translate(&doc.host, &doc.sources, &target);
    rate("keyfiles for all profiles", || {
        for p in t.profiles() {
            black_box(nm::to_keyfile(p));
        }
    });
    rate("canonical libvirt XML", || {
        black_box(xml::write_host(black_box(&doc.host)));
    });
    println!("ratio to target: {:.1}x", full / 20_000.0);
}
