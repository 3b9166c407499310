//! Pure edits of a CNI conf dir's files: find Calico's network, place or remove our entries.
//! Nothing here touches the filesystem, so every rule is unit-tested over in-memory files.

use serde_json::{Map, Value};

pub const OUR_TYPE: &str = "calico-preflight";
pub const CALICO_TYPE: &str = "calico";
/// The extensions libcni (and so containerd and CRI-O) reads, in `ConfFiles`.
pub const EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Right after calico: the pod checks see Calico's result.
    AfterCalico,
    /// First in the chain: the node checks run before Calico touches anything.
    First,
    Both,
}

impl Position {
    pub fn parse(s: &str) -> Option<Position> {
        match s {
            "after-calico" => Some(Position::AfterCalico),
            "first" => Some(Position::First),
            "both" => Some(Position::Both),
            _ => None,
        }
    }
    fn wants_first(self) -> bool {
        matches!(self, Position::First | Position::Both)
    }
    fn wants_after(self) -> bool {
        matches!(self, Position::AfterCalico | Position::Both)
    }
}

/// One file of the conf dir, as read (names sorted the way libcni sorts them).
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The entry (or entries) we put in the chain: the one placed first and the one after calico.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries {
    pub first: Map<String, Value>,
    pub after: Map<String, Value>,
}

impl Entries {
    pub fn same(entry: Map<String, Value>) -> Entries {
        Entries {
            first: entry.clone(),
            after: entry,
        }
    }
}

/// `{"type": "calico-preflight"}`: the plugin's defaults (enforce, every check on).
pub fn default_entry() -> Map<String, Value> {
    with_our_type(Map::new())
}

/// `type` forced to ours and put first (where a reader looks), every other key kept in order.
pub fn with_our_type(entry: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("type".into(), Value::String(OUR_TYPE.into()));
    out.extend(entry.into_iter().filter(|(k, _)| k != "type"));
    out
}

/// Parses `--entry`: a JSON object.
pub fn parse_entry(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(with_our_type(m)),
        Ok(other) => Err(format!(
            "--entry must be a JSON object such as '{{\"mode\": \"warn\"}}', found {}",
            crate::cni::netconf::kind_of(&other)
        )),
        Err(e) => Err(format!("--entry is not valid JSON: {e}")),
    }
}

/// Keys the runtime sets in each plugin's config itself (libcni `buildOneConfig` and
/// `injectRuntimeConfig`, libcni/api.go): in our entry they are overwritten at best, and a
/// `prevResult` in an entry placed first reaches the plugin as if Calico had sent it.
pub const INJECTED_KEYS: &[&str] = &["cniVersion", "name", "prevResult", "runtimeConfig"];

/// Our entry as the plugin will read it at every ADD: refused here if the plugin would
/// refuse it there (every pod start on the node would fail with code 7).
pub fn check_entry(entry: &Map<String, Value>) -> Result<(), String> {
    if let Some(k) = INJECTED_KEYS.iter().find(|k| entry.contains_key(**k)) {
        return Err(format!(
            "sets \"{k}\", which the container runtime sets itself in each plugin's config \
             (it must not come from the conflist)"
        ));
    }
    crate::config::Config::from_json(entry)
        .map(|_| ())
        .map_err(|e| {
            e.msg
                .strip_prefix("calico-preflight: ")
                .unwrap_or(&e.msg)
                .to_string()
        })
}

/// The versions a runtime can send the plugins of `list`, as libcni picks them
/// (`NetworkConfFromBytes`, libcni/conf.go): `cniVersion`, or with `cniVersions` (libcni
/// 1.2+) the highest listed that is not above libcni's own 1.1.0. An older libcni ignores
/// `cniVersions`, so both must be versions the plugin speaks.
pub fn check_version(list: &Map<String, Value>) -> Result<(), String> {
    let supported = crate::cni::version::SUPPORTED.join(", ");
    let plain = match list.get("cniVersion") {
        None => {
            return Err(format!(
                "has no \"cniVersion\": the runtime would pass none to calico-preflight, which \
                 refuses that, so every pod start would fail (it speaks {supported})"
            ))
        }
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(format!(
                "has a \"cniVersion\" that is {}, not a string",
                crate::cni::netconf::kind_of(other)
            ))
        }
    };
    let refuse = |v: &str, how: &str| {
        Err(format!(
            "has {how} {v:?}, a CNI version calico-preflight does not speak: every pod start \
             would fail with code 1 (it speaks {supported})"
        ))
    };
    if !crate::cni::version::is_supported(&plain) {
        return refuse(&plain, "\"cniVersion\"");
    }
    if let Some(Value::Array(vs)) = list.get("cniVersions") {
        let key = |v: &str| -> Option<(u64, u64, u64)> {
            let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
            let k = (it.next()??, it.next()??, it.next()??);
            it.next().is_none().then_some(k)
        };
        let libcni_max = (1, 1, 0);
        let best = vs
            .iter()
            .filter_map(Value::as_str)
            .chain([plain.as_str()])
            .filter_map(|v| key(v).map(|k| (k, v)))
            .filter(|(k, _)| *k <= libcni_max)
            .max_by_key(|(k, _)| *k)
            .map(|(_, v)| v.to_string());
        if let Some(v) = best {
            if !crate::cni::version::is_supported(&v) {
                return refuse(&v, "(from \"cniVersions\")");
            }
        }
    }
    Ok(())
}

/// What a file holds, read the way libcni reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A conflist: an object with a `plugins` array.
    List(Map<String, Value>),
    /// A single-plugin conf: an object with a `type` and no `plugins`.
    Single(Map<String, Value>),
    /// Valid JSON that is no network configuration; left alone.
    Other,
}

/// A file we cannot read: its name and the parser's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsable {
    pub name: String,
    pub error: String,
}

pub fn classify(file: &ConfFile) -> Result<Kind, Unparsable> {
    let value: Value = serde_json::from_slice(&file.bytes).map_err(|e| Unparsable {
        name: file.name.clone(),
        error: if file.bytes.iter().all(u8::is_ascii_whitespace) {
            "the file is empty".to_string()
        } else {
            e.to_string()
        },
    })?;
    Ok(match value {
        Value::Object(m) if m.get("plugins").is_some_and(Value::is_array) => Kind::List(m),
        Value::Object(m) if !m.contains_key("plugins") && m.get("type").is_some() => {
            Kind::Single(m)
        }
        _ => Kind::Other,
    })
}

pub fn plugin_type(p: &Value) -> Option<&str> {
    p.get("type").and_then(Value::as_str)
}

fn plugins(list: &Map<String, Value>) -> &[Value] {
    list.get("plugins")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn plugins_mut(list: &mut Map<String, Value>) -> Option<&mut Vec<Value>> {
    list.get_mut("plugins").and_then(Value::as_array_mut)
}

/// The chain's plugin types in order, for messages ("calico, calico-preflight, portmap").
pub fn chain(list: &Map<String, Value>) -> String {
    plugins(list)
        .iter()
        .map(|p| plugin_type(p).unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn holds_calico(kind: &Kind) -> bool {
    match kind {
        Kind::List(l) => plugins(l)
            .iter()
            .any(|p| plugin_type(p) == Some(CALICO_TYPE)),
        Kind::Single(s) => s.get("type").and_then(Value::as_str) == Some(CALICO_TYPE),
        Kind::Other => false,
    }
}

/// A single-plugin conf as the conflist libcni would make of it (`ConfListFromConf`); the
/// only way to chain anything after it.
pub fn single_to_list(conf: Map<String, Value>) -> Map<String, Value> {
    let mut list = Map::new();
    let mut plugin = Map::new();
    for (k, v) in conf {
        match k.as_str() {
            "cniVersion" | "name" => {
                list.insert(k, v);
            }
            _ => {
                plugin.insert(k, v);
            }
        }
    }
    list.insert("plugins".into(), Value::Array(vec![Value::Object(plugin)]));
    list
}

/// Our entries already in the chain, to keep an operator's tuning when no `--entry` is given:
/// the one before calico fills the "first" slot, the one after fills the "after" slot, and
/// either stands in for the other.
pub fn existing_entries(list: &Map<String, Value>) -> Option<Entries> {
    let ps = plugins(list);
    let cut = ps
        .iter()
        .position(|p| plugin_type(p) == Some(CALICO_TYPE))
        .unwrap_or(ps.len());
    let ours = |part: &[Value]| {
        part.iter()
            .find(|p| plugin_type(p) == Some(OUR_TYPE))
            .and_then(|p| p.as_object().cloned())
    };
    let before = ours(&ps[..cut]);
    let after = ours(&ps[cut..]);
    match (before, after) {
        (None, None) => None,
        (Some(f), None) => Some(Entries::same(f)),
        (None, Some(a)) => Some(Entries::same(a)),
        (Some(first), Some(after)) => Some(Entries { first, after }),
    }
}

/// Removes our entries; returns how many there were.
pub fn remove_ours(list: &mut Map<String, Value>) -> usize {
    let Some(ps) = plugins_mut(list) else {
        return 0;
    };
    let before = ps.len();
    ps.retain(|p| plugin_type(p) != Some(OUR_TYPE));
    before - ps.len()
}

/// Puts our entries where `position` says and nowhere else. Running it again on its own
/// output changes nothing, which is what makes install idempotent.
pub fn place(
    list: &mut Map<String, Value>,
    position: Position,
    entries: &Entries,
) -> Result<(), String> {
    remove_ours(list);
    let Some(ps) = plugins_mut(list) else {
        return Err("has no \"plugins\" array".into());
    };
    let Some(calico) = ps.iter().position(|p| plugin_type(p) == Some(CALICO_TYPE)) else {
        return Err("has no plugin with \"type\": \"calico\"".into());
    };
    if position.wants_after() {
        ps.insert(
            calico + 1,
            Value::Object(with_our_type(after_entry(position, entries))),
        );
    }
    if position.wants_first() {
        ps.insert(0, Value::Object(with_our_type(entries.first.clone())));
    }
    Ok(())
}

/// The entry after calico. With `both`, the first entry has run the node checks moments
/// before, so the second gets `"nodeChecks": false` unless the operator set `nodeChecks`
/// themselves. Placed alone after calico again, an entry that differs from the first only by
/// that added `false` loses it, so that the node checks keep running somewhere.
fn after_entry(position: Position, entries: &Entries) -> Map<String, Value> {
    const KEY: &str = "nodeChecks";
    let mut after = entries.after.clone();
    match position {
        Position::Both if !after.contains_key(KEY) => {
            after.insert(KEY.into(), Value::Bool(false));
        }
        Position::AfterCalico
            if after.get(KEY) == Some(&Value::Bool(false)) && !entries.first.contains_key(KEY) =>
        {
            let mut without = after.clone();
            without.remove(KEY);
            if with_our_type(without.clone()) == with_our_type(entries.first.clone()) {
                after = without;
            }
        }
        _ => {}
    }
    after
}

/// The file's new text: two-space indented JSON and a final newline, like Calico writes.
pub fn render(list: &Map<String, Value>) -> String {
    // Serializing a map of JSON values cannot fail; fall back to compact JSON, not a panic.
    let mut s = serde_json::to_string_pretty(list)
        .unwrap_or_else(|_| Value::Object(list.clone()).to_string());
    s.push('\n');
    s
}

/// The name a single-plugin conf gets once it is a conflist: `10-calico.conf` ->
/// `10-calico.conflist`.
pub fn conflist_name(name: &str) -> String {
    let stem = name
        .rsplit_once('.')
        .map(|(stem, _)| stem)
        .filter(|s| !s.is_empty())
        .unwrap_or(name);
    format!("{stem}.conflist")
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstallPlan {
    /// The file holding Calico.
    pub source: String,
    /// Its bytes as read: it is replaced only if it still holds them.
    pub source_bytes: Vec<u8>,
    /// When `target` is not `source`: the bytes of an existing `target` that this plan
    /// replaces (a conflist of ours that an old installer's `.conf` now shadows).
    pub replaces: Option<Vec<u8>>,
    /// The file to write: `source`, or `<stem>.conflist` when `source` was a single-plugin conf.
    pub target: String,
    pub text: String,
    /// False when `target` already holds exactly `text`: nothing to write.
    pub changed: bool,
    /// The entries placed (remembered by `--watch` so a rewrite by Calico gets them back).
    pub entries: Entries,
    pub chain_before: String,
    pub chain_after: String,
    /// A network file libcni would pick before Calico's (the runtime uses only the first).
    pub shadowed_by: Option<String>,
    /// Further files holding calico, left alone (the runtime never reads past the first).
    pub other_calico: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    Unparsable(Unparsable),
    NoCalico {
        looked_at: Vec<String>,
    },
    /// Converting `from` to a conflist would overwrite an existing file.
    TargetExists {
        from: String,
        target: String,
    },
    Invalid {
        name: String,
        problem: String,
    },
    /// The conflist's version is one the plugin refuses: placing it there breaks every pod.
    Version {
        name: String,
        problem: String,
    },
    /// An entry of ours the plugin's own parser refuses: `in_file` names where it came from
    /// (`None`: `--entry`), `at` its index in `plugins`.
    BadEntry {
        in_file: Option<(String, usize)>,
        problem: String,
    },
}

/// Finds Calico's network among `files` (sorted) and computes its new text. The entries
/// placed: `explicit` (`--entry`) if given, else the file's own (an operator's tuning is
/// kept), else `remembered` (what `--watch` placed before Calico rewrote the file), else the
/// default entry.
pub fn plan_install(
    files: &[ConfFile],
    position: Position,
    explicit: Option<&Entries>,
    remembered: Option<&Entries>,
) -> Result<InstallPlan, PlanError> {
    // Refuse to edit anything while a file cannot be read: containerd refuses such a conf
    // dir too, and the operator has to look at it first.
    let mut kinds = Vec::with_capacity(files.len());
    for f in files {
        kinds.push(classify(f).map_err(PlanError::Unparsable)?);
    }
    let Some(idx) = kinds.iter().position(holds_calico) else {
        return Err(PlanError::NoCalico {
            looked_at: files.iter().map(|f| f.name.clone()).collect(),
        });
    };
    let source = &files[idx];
    let shadowed_by = kinds[..idx]
        .iter()
        .position(|k| !matches!(k, Kind::Other))
        .map(|i| files[i].name.clone());
    let other_calico = kinds
        .iter()
        .enumerate()
        .skip(idx + 1)
        .filter(|(_, k)| holds_calico(k))
        .map(|(i, _)| files[i].name.clone())
        .collect();
    // The entries already placed where we write: kept unless `--entry` replaces them.
    let mut kept: Option<(Entries, String, Map<String, Value>)> = None;
    let mut replaces = None;
    let (mut list, target) = match kinds[idx].clone() {
        Kind::List(l) => {
            kept = existing_entries(&l).map(|e| (e, source.name.clone(), l.clone()));
            (l, source.name.clone())
        }
        Kind::Single(s) => {
            let target = conflist_name(&source.name);
            if let Some(t) = files.iter().position(|f| f.name == target) {
                // `10-calico.conf` sorts before `10-calico.conflist`, so the runtime uses the
                // `.conf`. If the conflist is one we manage (calico and our entry), an old
                // installer rewrote the `.conf` after we converted it: convert it again,
                // over our stale conflist, keeping the entries placed there. Any other
                // conflist of that name is someone else's, and is never overwritten.
                match &kinds[t] {
                    Kind::List(l) if holds_calico(&kinds[t]) && existing_entries(l).is_some() => {
                        kept = existing_entries(l).map(|e| (e, target.clone(), l.clone()));
                        replaces = Some(files[t].bytes.clone());
                    }
                    _ => {
                        return Err(PlanError::TargetExists {
                            from: source.name.clone(),
                            target,
                        })
                    }
                }
            }
            (single_to_list(s), target)
        }
        Kind::Other => unreachable_kind(&source.name)?,
    };
    check_version(&list).map_err(|problem| PlanError::Version {
        name: source.name.clone(),
        problem,
    })?;
    let chain_before = chain(&list);
    let entries = match explicit {
        Some(e) => {
            for entry in [&e.first, &e.after] {
                check_entry(entry).map_err(|problem| PlanError::BadEntry {
                    in_file: None,
                    problem,
                })?;
            }
            e.clone()
        }
        None => match kept {
            Some((e, name, l)) => {
                for (i, p) in plugins(&l).iter().enumerate() {
                    if plugin_type(p) != Some(OUR_TYPE) {
                        continue;
                    }
                    let entry = p.as_object().cloned().unwrap_or_default();
                    check_entry(&entry).map_err(|problem| PlanError::BadEntry {
                        in_file: Some((name.clone(), i)),
                        problem,
                    })?;
                }
                e
            }
            None => {
                let e = remembered
                    .cloned()
                    .unwrap_or_else(|| Entries::same(default_entry()));
                for entry in [&e.first, &e.after] {
                    check_entry(entry).map_err(|problem| PlanError::BadEntry {
                        in_file: None,
                        problem,
                    })?;
                }
                e
            }
        },
    };
    place(&mut list, position, &entries).map_err(|problem| PlanError::Invalid {
        name: source.name.clone(),
        problem,
    })?;
    let text = render(&list);
    let changed = target != source.name || text.as_bytes() != source.bytes.as_slice();
    Ok(InstallPlan {
        source: source.name.clone(),
        source_bytes: source.bytes.clone(),
        replaces,
        target,
        text,
        changed,
        entries,
        chain_before,
        chain_after: chain(&list),
        shadowed_by,
        other_calico,
    })
}

// `holds_calico` is false for `Other`, so the file found cannot be one; keep the match total
// without a panic anyway.
fn unreachable_kind<T>(name: &str) -> Result<T, PlanError> {
    Err(PlanError::Invalid {
        name: name.to_string(),
        problem: "is no network configuration".into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    pub name: String,
    /// The file's bytes as read: it is rewritten only if it still holds them.
    pub bytes: Vec<u8>,
    pub text: String,
    pub removed: usize,
    pub chain_after: String,
}

/// A file holding our plugin that uninstall does not change, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftAlone {
    pub name: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UninstallPlan {
    pub removals: Vec<Removal>,
    pub left_alone: Vec<LeftAlone>,
    pub unparsable: Vec<Unparsable>,
}

/// Every conflist holding our entries, without them. Unparsable files are returned apart:
/// uninstall still cleans every file it can read. A network whose only plugin is ours is
/// left as it is: without it the list would be empty (`"plugins": []`), which libcni refuses
/// to load ("no plugins in list", libcni/conf.go), and removing the file would hand pods to
/// whichever network sorts next. Install never writes such a file, so a person made it, and
/// a person decides what replaces it.
pub fn plan_uninstall(files: &[ConfFile]) -> UninstallPlan {
    let mut plan = UninstallPlan::default();
    let only_ours = |name: &str| LeftAlone {
        name: name.to_string(),
        why: "its only plugin is calico-preflight: without it the network would have no \
              plugins, a file the runtime refuses to load"
            .into(),
    };
    for f in files {
        match classify(f) {
            Ok(Kind::List(mut l)) => {
                let removed = remove_ours(&mut l);
                if removed == 0 {
                    continue;
                }
                if plugins(&l).is_empty() {
                    plan.left_alone.push(only_ours(&f.name));
                    continue;
                }
                plan.removals.push(Removal {
                    name: f.name.clone(),
                    bytes: f.bytes.clone(),
                    text: render(&l),
                    removed,
                    chain_after: chain(&l),
                });
            }
            Ok(Kind::Single(s)) if s.get("type").and_then(Value::as_str) == Some(OUR_TYPE) => {
                plan.left_alone.push(only_ours(&f.name));
            }
            Ok(_) => {}
            Err(u) => plan.unparsable.push(u),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(name: &str, v: &Value) -> ConfFile {
        ConfFile {
            name: name.into(),
            bytes: serde_json::to_vec_pretty(v).unwrap(),
        }
    }

    fn calico_list() -> Value {
        json!({
            "name": "k8s-pod-network",
            "cniVersion": "0.3.1",
            "plugins": [
                {"type": "calico", "log_level": "info", "mtu": 1440,
                 "ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"}},
                {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}}
            ]
        })
    }

    fn types(text: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(text).unwrap();
        v["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn positions() {
        let files = [file("10-calico.conflist", &calico_list())];
        for (pos, want) in [
            (
                Position::AfterCalico,
                &["calico", OUR_TYPE, "portmap", "bandwidth"][..],
            ),
            (
                Position::First,
                &[OUR_TYPE, "calico", "portmap", "bandwidth"],
            ),
            (
                Position::Both,
                &[OUR_TYPE, "calico", OUR_TYPE, "portmap", "bandwidth"],
            ),
        ] {
            let plan = plan_install(&files, pos, None, None).unwrap();
            assert_eq!(types(&plan.text), want, "{pos:?}");
            assert!(plan.changed);
            assert_eq!(plan.target, "10-calico.conflist");
            assert_eq!(plan.chain_before, "calico, portmap, bandwidth");
        }
    }

    #[test]
    fn second_run_is_byte_identical_and_moves_entries() {
        let files = [file("10-calico.conflist", &calico_list())];
        let first = plan_install(&files, Position::Both, None, None).unwrap();
        let again = [ConfFile {
            name: "10-calico.conflist".into(),
            bytes: first.text.clone().into_bytes(),
        }];
        let second = plan_install(&again, Position::Both, None, None).unwrap();
        assert!(!second.changed);
        assert_eq!(second.text, first.text);
        // Switching position moves the entries instead of adding more.
        let moved = plan_install(&again, Position::AfterCalico, None, None).unwrap();
        assert_eq!(
            types(&moved.text),
            ["calico", OUR_TYPE, "portmap", "bandwidth"]
        );
        // ... and alone after calico the entry runs the node checks again.
        let v: Value = serde_json::from_str(&moved.text).unwrap();
        assert_eq!(v["plugins"][1], json!({"type": OUR_TYPE}), "{v}");
    }

    #[test]
    fn both_turns_node_checks_off_after_calico_unless_the_operator_set_them() {
        let files = [file("10-calico.conflist", &calico_list())];
        let plan = plan_install(&files, Position::Both, None, None).unwrap();
        let v: Value = serde_json::from_str(&plan.text).unwrap();
        assert_eq!(v["plugins"][0], json!({"type": OUR_TYPE}));
        assert_eq!(
            v["plugins"][2],
            json!({"type": OUR_TYPE, "nodeChecks": false})
        );
        // An operator's own nodeChecks is kept, in either direction.
        for set in [true, false] {
            let mut e = default_entry();
            e.insert("mode".into(), json!("warn"));
            e.insert("nodeChecks".into(), json!(set));
            let plan = plan_install(&files, Position::Both, Some(&Entries::same(e)), None).unwrap();
            let v: Value = serde_json::from_str(&plan.text).unwrap();
            assert_eq!(v["plugins"][2]["nodeChecks"], json!(set), "{v}");
            assert_eq!(v["plugins"][2]["mode"], "warn", "{v}");
        }
        // An entry tuned after calico (checks off there) keeps its tuning when moved alone.
        let mut l = calico_list();
        let ps = l["plugins"].as_array_mut().unwrap();
        ps.insert(0, json!({"type": OUR_TYPE}));
        ps.insert(
            2,
            json!({"type": OUR_TYPE, "nodeChecks": false, "mode": "warn"}),
        );
        let moved = plan_install(
            &[file("10-calico.conflist", &l)],
            Position::AfterCalico,
            None,
            None,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&moved.text).unwrap();
        assert_eq!(v["plugins"][1]["nodeChecks"], false, "{v}");
    }

    #[test]
    fn keeps_every_other_key_and_order() {
        let original = calico_list();
        let plan = plan_install(
            &[file("10-calico.conflist", &original)],
            Position::AfterCalico,
            None,
            None,
        )
        .unwrap();
        let mut v: Value = serde_json::from_str(&plan.text).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["name", "cniVersion", "plugins"]);
        let calico_keys: Vec<_> = v["plugins"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(calico_keys, ["type", "log_level", "mtu", "ipam", "policy"]);
        let mut l = v.as_object_mut().unwrap().clone();
        assert_eq!(remove_ours(&mut l), 1);
        assert_eq!(Value::Object(l), original);
        v["plugins"].as_array_mut().unwrap().remove(1);
        assert_eq!(v, original);
    }

    #[test]
    fn existing_entry_is_kept_unless_explicit() {
        let mut l = calico_list();
        l["plugins"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": OUR_TYPE, "mode": "warn", "logFile": "/var/log/p.log"}));
        let files = [file("10-calico.conflist", &l)];
        let plan = plan_install(&files, Position::AfterCalico, None, None).unwrap();
        let v: Value = serde_json::from_str(&plan.text).unwrap();
        assert_eq!(v["plugins"][1]["mode"], "warn");
        assert_eq!(v["plugins"].as_array().unwrap().len(), 4);
        let explicit = Entries::same(parse_entry(r#"{"mode":"enforce","type":"x"}"#).unwrap());
        let plan = plan_install(&files, Position::AfterCalico, Some(&explicit), None).unwrap();
        let v: Value = serde_json::from_str(&plan.text).unwrap();
        assert_eq!(
            v["plugins"][1],
            json!({"type": OUR_TYPE, "mode": "enforce"})
        );
    }

    #[test]
    fn both_slots_keep_their_own_entry() {
        let mut l = calico_list();
        let ps = l["plugins"].as_array_mut().unwrap();
        ps.insert(0, json!({"type": OUR_TYPE, "checks": {"a": "off"}}));
        ps.insert(2, json!({"type": OUR_TYPE, "mode": "warn"}));
        let e = existing_entries(l.as_object().unwrap()).unwrap();
        assert_eq!(e.first["checks"], json!({"a": "off"}));
        assert_eq!(e.after["mode"], "warn");
    }

    #[test]
    fn single_plugin_conf_becomes_a_conflist() {
        let conf = json!({"cniVersion": "0.3.1", "name": "k8s-pod-network", "type": "calico",
                          "ipam": {"type": "calico-ipam"}});
        let plan = plan_install(
            &[file("10-calico.conf", &conf)],
            Position::AfterCalico,
            None,
            None,
        )
        .unwrap();
        assert_eq!(plan.target, "10-calico.conflist");
        assert!(plan.changed);
        let v: Value = serde_json::from_str(&plan.text).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": "0.3.1", "name": "k8s-pod-network", "plugins": [
                {"type": "calico", "ipam": {"type": "calico-ipam"}}, {"type": OUR_TYPE}]})
        );
        // Never overwrite a conflist that already has that name.
        let err = plan_install(
            &[
                file("10-calico.conf", &conf),
                file("10-calico.conflist", &json!({"plugins": []})),
            ],
            Position::AfterCalico,
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::TargetExists { .. }), "{err:?}");
    }

    #[test]
    fn calico_file_is_found_behind_another_network() {
        let other = json!({"cniVersion": "1.0.0", "name": "other",
                           "plugins": [{"type": "bridge"}]});
        let files = [
            file("05-other.conflist", &other),
            file("10-calico.conflist", &calico_list()),
            file(
                "20-calico-old.conf",
                &json!({"type": "calico", "name": "x"}),
            ),
        ];
        let plan = plan_install(&files, Position::AfterCalico, None, None).unwrap();
        assert_eq!(plan.source, "10-calico.conflist");
        assert_eq!(plan.shadowed_by.as_deref(), Some("05-other.conflist"));
        assert_eq!(plan.other_calico, ["20-calico-old.conf"]);
    }

    #[test]
    fn refusals() {
        let bad = ConfFile {
            name: "10-calico.conflist".into(),
            bytes: b"{\"plugins\": [\n  {\"type\": \"calico\",}\n]}".to_vec(),
        };
        match plan_install(&[bad], Position::AfterCalico, None, None) {
            Err(PlanError::Unparsable(u)) => {
                assert_eq!(u.name, "10-calico.conflist");
                assert!(u.error.contains("line 2"), "{}", u.error);
            }
            other => panic!("{other:?}"),
        }
        let empty = ConfFile {
            name: "a.conf".into(),
            bytes: b"\n".to_vec(),
        };
        assert!(matches!(
            plan_install(&[empty], Position::First, None, None),
            Err(PlanError::Unparsable(Unparsable { error, .. })) if error == "the file is empty"
        ));
        let other = file("a.conflist", &json!({"plugins": [{"type": "bridge"}]}));
        assert_eq!(
            plan_install(&[other], Position::First, None, None),
            Err(PlanError::NoCalico {
                looked_at: vec!["a.conflist".into()]
            })
        );
        assert!(parse_entry("[1]").unwrap_err().contains("found an array"));
        assert!(parse_entry("{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn uninstall_removes_every_position_and_only_ours() {
        let original = calico_list();
        let installed = plan_install(
            &[file("10-calico.conflist", &original)],
            Position::Both,
            None,
            None,
        )
        .unwrap();
        let files = [
            ConfFile {
                name: "10-calico.conflist".into(),
                bytes: installed.text.into_bytes(),
            },
            file("20-x.conflist", &json!({"plugins": [{"type": "bridge"}]})),
            ConfFile {
                name: "30-broken.conf".into(),
                bytes: b"{".to_vec(),
            },
        ];
        let UninstallPlan {
            removals,
            unparsable: bad,
            ..
        } = plan_uninstall(&files);
        assert_eq!(removals.len(), 1);
        assert_eq!(removals[0].removed, 2);
        let v: Value = serde_json::from_str(&removals[0].text).unwrap();
        assert_eq!(v, original);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].name, "30-broken.conf");
    }

    #[test]
    fn names() {
        assert_eq!(conflist_name("10-calico.conf"), "10-calico.conflist");
        assert_eq!(conflist_name("10-calico.json"), "10-calico.conflist");
        assert_eq!(conflist_name(".conf"), ".conf.conflist");
        assert_eq!(
            parse_entry(r#"{"mode":"warn","type":"y"}"#)
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["type", "mode"]
        );
    }

    #[test]
    fn versions_the_plugin_refuses_are_refused() {
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = calico_list();
            f(&mut v);
            v.as_object().unwrap().clone()
        };
        assert!(check_version(&with(&|_| {})).is_ok());
        for bad in [
            json!("0.1.0"),
            json!("0.2.0"),
            json!("x"),
            json!(1),
            json!("1.2.0"),
        ] {
            let l = with(&|v| v["cniVersion"] = bad.clone());
            assert!(check_version(&l).is_err(), "{bad}");
        }
        let l = with(&|v| {
            v.as_object_mut().unwrap().remove("cniVersion");
        });
        assert!(check_version(&l).unwrap_err().contains("no \"cniVersion\""));
        // libcni 1.2+ picks the highest of cniVersions + cniVersion not above 1.1.0.
        let l = with(&|v| v["cniVersions"] = json!(["1.0.0", "2.0.0"]));
        assert!(check_version(&l).is_ok());
        let l = with(&|v| {
            v["cniVersion"] = json!("0.1.0");
            v["cniVersions"] = json!(["0.2.0"]);
        });
        assert!(check_version(&l).is_err());
        let err = plan_install(
            &[file(
                "10-calico.conflist",
                &with(&|v| v["cniVersion"] = json!("0.2.0")).into(),
            )],
            Position::AfterCalico,
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Version { .. }), "{err:?}");
    }

    #[test]
    fn entries_the_plugin_refuses_are_refused() {
        assert!(check_entry(&default_entry()).is_ok());
        for (k, v) in [
            ("prevResult", json!({})),
            ("cniVersion", json!("1.0.0")),
            ("name", json!("x")),
            ("runtimeConfig", json!({})),
            ("mode", json!("loud")),
        ] {
            let mut e = default_entry();
            e.insert(k.into(), v);
            assert!(check_entry(&e).unwrap_err().contains(k), "{k}");
        }
        let mut l = calico_list();
        l["plugins"]
            .as_array_mut()
            .unwrap()
            .insert(1, json!({"type": OUR_TYPE, "timeoutMs": 0}));
        let files = [file("10-calico.conflist", &l)];
        match plan_install(&files, Position::AfterCalico, None, None) {
            Err(PlanError::BadEntry {
                in_file: Some((name, 1)),
                problem,
            }) => {
                assert_eq!(name, "10-calico.conflist");
                assert!(problem.contains("timeoutMs"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        // An explicit entry replaces the bad one instead of being refused for it.
        let e = Entries::same(default_entry());
        assert!(plan_install(&files, Position::AfterCalico, Some(&e), None).is_ok());
    }

    #[test]
    fn only_ours_networks_are_left_alone_by_uninstall() {
        let files = [
            file(
                "20-only.conflist",
                &json!({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": OUR_TYPE}]}),
            ),
            file("30-single.conf", &json!({"name": "y", "type": OUR_TYPE})),
        ];
        let plan = plan_uninstall(&files);
        assert!(plan.removals.is_empty());
        let names: Vec<_> = plan.left_alone.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["20-only.conflist", "30-single.conf"]);
    }

    #[test]
    fn a_rewritten_conf_replaces_our_stale_conflist_only() {
        let conf = json!({"cniVersion": "0.3.1", "name": "k8s-pod-network", "type": "calico",
                          "mtu": 1400});
        let ours = json!({"cniVersion": "0.3.1", "name": "k8s-pod-network", "plugins": [
            {"type": "calico", "mtu": 1500}, {"type": OUR_TYPE, "mode": "warn"}]});
        let files = [
            file("10-calico.conf", &conf),
            file("10-calico.conflist", &ours),
        ];
        let plan = plan_install(&files, Position::AfterCalico, None, None).unwrap();
        assert_eq!(
            (plan.source.as_str(), plan.target.as_str()),
            ("10-calico.conf", "10-calico.conflist")
        );
        assert!(plan.replaces.is_some());
        let v: Value = serde_json::from_str(&plan.text).unwrap();
        assert_eq!(v["plugins"][0]["mtu"], 1400);
        assert_eq!(v["plugins"][1], json!({"type": OUR_TYPE, "mode": "warn"}));
        // A conflist without our entry is someone else's.
        let theirs = json!({"cniVersion": "0.3.1", "name": "n", "plugins": [{"type": "calico"}]});
        let files = [
            file("10-calico.conf", &conf),
            file("10-calico.conflist", &theirs),
        ];
        assert!(matches!(
            plan_install(&files, Position::AfterCalico, None, None),
            Err(PlanError::TargetExists { .. })
        ));
    }
}
