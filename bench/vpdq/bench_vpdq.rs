//! vPDQ throughput: frames per second at native resolution and at 1 hash per second, on one
//! thread and on all cores, with the decode (libav), convert (swscale) and hash (PDQ) stages
//! reported separately.
//!
//! Usage: bench_vpdq VIDEO... (e.g. ../shared/testdata/vpdq/videos/*.mp4)
//!
//! "All cores" hashes several videos at once, one per core (each video's frames are decoded in
//! order by one decoder, as the reference does; frame threading is off).

use std::path::PathBuf;
use std::time::Instant;

use hashguard_vpdq::{hash_video_file_timed, StageTimes, VideoOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let videos: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if videos.is_empty() {
        return Err("usage: bench_vpdq VIDEO...".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("| mode | threads | frames decoded/s | frames hashed/s | decode ms/frame | convert ms/hashed frame | hash ms/hashed frame |");
    println!("|---|---|---|---|---|---|---|");
    for (label, seconds_per_hash) in [("every frame, native", 0.0), ("1 hash/s, native", 1.0)] {
        let options = VideoOptions {
            seconds_per_hash,
            ..Default::default()
        };
        for threads in [1, cores] {
            // Each worker takes the whole list, so all cores have the same work as one.
            let start = Instant::now();
            let totals: Vec<StageTimes> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut t = StageTimes::default();
                            for v in &videos {
                                let (_, s) = hash_video_file_timed(v, &options)
                                    .unwrap_or_else(|e| panic!("{}: {e}", v.display()));
                                t.decode += s.decode;
                                t.convert += s.convert;
                                t.hash += s.hash;
                                t.frames_decoded += s.frames_decoded;
                                t.frames_hashed += s.frames_hashed;
                            }
                            t
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker"))
                    .collect()
            });
            let wall = start.elapsed().as_secs_f64();
            let decoded: u64 = totals.iter().map(|t| t.frames_decoded).sum();
            let hashed: u64 = totals.iter().map(|t| t.frames_hashed).sum();
            let ms = |d: f64, n: u64| d * 1e3 / n.max(1) as f64;
            let decode: f64 = totals.iter().map(|t| t.decode.as_secs_f64()).sum();
            let convert: f64 = totals.iter().map(|t| t.convert.as_secs_f64()).sum();
            let hash: f64 = totals.iter().map(|t| t.hash.as_secs_f64()).sum();
            println!(
                "| {label} | {threads} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
                decoded as f64 / wall,
                hashed as f64 / wall,
                ms(decode, decoded),
                ms(convert, hashed),
                ms(hash, hashed),
            );
        }
    }
    Ok(())
}
