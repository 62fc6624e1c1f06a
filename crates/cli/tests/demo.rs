//! The README's main job, `hashguard demo`, end to end: the listed demo image and its
//! re-encoded copies open, the unrelated image does not, in the clear and privately.

mod common;

#[test]
fn demo_opens_listed_images_and_only_those() {
    let out = common::hashguard_ok(&["demo"]);
    let line = |name: &str, section: &str| -> String {
        let start = out
            .find(section)
            .unwrap_or_else(|| panic!("no section {section:?}:\n{out}"));
        out[start..]
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no line for {name} after {section:?}:\n{out}"))
            .to_string()
    };
    for name in ["hills.png", "hills-recompressed.jpg", "hills-small.jpg"] {
        assert!(
            line(name, "2. Matching").contains("matches standin-a"),
            "{out}"
        );
        assert!(line(name, "4. Uploads").contains("OPENED"), "{out}");
    }
    assert!(
        line("blocks.webp", "2. Matching").contains("no match"),
        "{out}"
    );
    assert!(
        line("blocks.webp", "4. Uploads").contains("not opened"),
        "{out}"
    );
    assert!(out.contains("12 consensus values -> 11 keys"), "{out}");
}
