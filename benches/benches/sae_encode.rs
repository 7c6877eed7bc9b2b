//! SAE encode throughput: [4096, 768] through a 24 576-wide standard SAE (the tutorial's widest
//! feature-splitting SAE). `cargo xtask bench sae-encode` runs this and SAELens side by side.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sae_core::device::{cpu, tensor_from_vec, tensor_to_vec};
use sae_geometry_benches::{SplitMix, random_standard_sae};

fn bench(c: &mut Criterion) {
    let dev = cpu();
    let (n, d_in, d_sae) = (4096, 768, 24_576);
    let sae = random_standard_sae(d_in, d_sae, &dev);
    let x = tensor_from_vec(SplitMix(7).vec(n * d_in, 1.0), [n, d_in], &dev);
    let mut g = c.benchmark_group("sae_encode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("encode_4096x768_to_24576", |b| {
        b.iter(|| {
            let f = sae.encode(x.clone()).expect("encode");
            // Force the computation (burn is lazy on some backends).
            let _ = tensor_to_vec(f).expect("read back");
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
