//! Prints the vPDQ lines of a video: `vpdq_hash FILE [SECONDS_PER_HASH] [RESIZE]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: vpdq_hash FILE [SECONDS_PER_HASH] [RESIZE]")?;
    let options = hashguard_vpdq::VideoOptions {
        seconds_per_hash: args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0.0),
        resize_to: args.get(3).map(|s| s.parse()).transpose()?,
        ..Default::default()
    };
    for f in hashguard_vpdq::hash_video_file(path.as_ref(), &options)? {
        println!("{f}");
    }
    Ok(())
}
