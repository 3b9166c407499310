//! The example conflists stay valid: JSON, one `calico` entry, and every calico-preflight entry
//! accepted by the plugin's own config parser.

use calico_preflight::config::Config;
use serde_json::Value;

#[test]
fn every_example_conflist_is_accepted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conflist-examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("conflist-examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("conflist") {
            continue;
        }
        seen += 1;
        let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
        let plugins = v["plugins"].as_array().expect("plugins");
        let types: Vec<&str> = plugins.iter().filter_map(|p| p["type"].as_str()).collect();
        assert_eq!(
            types.iter().filter(|t| **t == "calico").count(),
            1,
            "{path:?}"
        );
        let calico_at = types
            .iter()
            .position(|t| *t == "calico")
            .unwrap_or_default();
        assert_eq!(
            types.get(calico_at + 1),
            Some(&"calico-preflight"),
            "{path:?}: ours right after calico"
        );
        for p in plugins.iter().filter(|p| p["type"] == "calico-preflight") {
            let cfg = Config::from_json(p.as_object().expect("object"));
            assert!(cfg.is_ok(), "{path:?}: {cfg:?}");
        }
    }
    assert_eq!(seen, 4);
}
