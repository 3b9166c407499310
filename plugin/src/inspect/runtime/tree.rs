//! A TOML document as a tree whose leaves remember the file and key they were written at, so
//! that a value that went through containerd's migration and merge is still reported where
//! the operator wrote it.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Table(Table),
    Leaf(Leaf),
}

pub type Table = BTreeMap<String, Node>;

#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub value: toml::Value,
    pub origin: super::Origin,
}

/// Parses `text` (the file `file`); a key defined twice is an error, as the runtimes' TOML
/// decoders (go-toml, BurntSushi/toml) make it. The error names the line and the key.
pub fn parse(file: &str, text: &str) -> Result<Table, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| describe_error(file, text, &e))?;
    Ok(from_toml(doc, file, &[]))
}

fn describe_error(file: &str, text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    let Some(span) = e.span() else {
        return format!("{file}: {msg}");
    };
    let line = text
        .get(..span.start)
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(0);
    let at = text.get(span.clone()).unwrap_or("").trim();
    if msg.contains("duplicate") || msg.contains("redefin") {
        format!("{file} line {line}: {msg} ({at}): the key is defined twice, which the runtime refuses too")
    } else {
        format!("{file} line {line}: {msg}")
    }
}

fn from_toml(t: toml::Table, file: &str, path: &[String]) -> Table {
    t.into_iter()
        .map(|(k, v)| {
            let mut p = path.to_vec();
            p.push(k.clone());
            let node = match v {
                toml::Value::Table(inner) => Node::Table(from_toml(inner, file, &p)),
                value => Node::Leaf(Leaf {
                    value,
                    origin: super::Origin {
                        file: file.to_string(),
                        key: dotted(&p),
                    },
                }),
            };
            (k, node)
        })
        .collect()
}

/// `plugins."io.containerd.grpc.v1.cri".cni.bin_dir`: a key path as TOML writes it.
pub fn dotted<S: AsRef<str>>(path: &[S]) -> String {
    path.iter()
        .map(|s| {
            let s = s.as_ref();
            let bare = !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if bare {
                s.to_string()
            } else {
                format!("{s:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// containerd's merge of an imported file into what was loaded before (mergeConfig with
/// mergo.WithOverride over the `plugins` map): tables merged by key, any other value
/// (arrays included) replaced.
pub fn merge(to: &mut Table, from: Table) {
    for (k, v) in from {
        match (to.get_mut(&k), v) {
            (Some(Node::Table(t)), Node::Table(f)) => merge(t, f),
            (_, v) => {
                to.insert(k, v);
            }
        }
    }
}

pub fn get<'t>(t: &'t Table, path: &[&str]) -> Option<&'t Node> {
    let (first, rest) = path.split_first()?;
    let n = t.get(*first)?;
    if rest.is_empty() {
        return Some(n);
    }
    match n {
        Node::Table(inner) => get(inner, rest),
        Node::Leaf(_) => None,
    }
}

pub fn table<'t>(t: &'t Table, path: &[&str]) -> Option<&'t Table> {
    match get(t, path)? {
        Node::Table(inner) => Some(inner),
        Node::Leaf(_) => None,
    }
}

pub fn table_mut<'t>(t: &'t mut Table, path: &[&str]) -> Option<&'t mut Table> {
    let (first, rest) = path.split_first()?;
    match t.get_mut(*first)? {
        Node::Table(inner) => {
            if rest.is_empty() {
                Some(inner)
            } else {
                table_mut(inner, rest)
            }
        }
        Node::Leaf(_) => None,
    }
}

/// A string value; `Err` names the key when it holds something else.
pub fn string(n: &Node) -> Result<(String, &super::Origin), String> {
    match n {
        Node::Leaf(Leaf {
            value: toml::Value::String(s),
            origin,
        }) => Ok((s.clone(), origin)),
        Node::Leaf(l) => Err(format!("{} is not a string", l.origin)),
        Node::Table(_) => Err("a table where a string belongs".into()),
    }
}

/// A list of strings; `Err` names the key when it holds something else.
pub fn strings(n: &Node) -> Result<(Vec<String>, &super::Origin), String> {
    match n {
        Node::Leaf(Leaf {
            value: toml::Value::Array(a),
            origin,
        }) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|v| (v, origin))
            .ok_or_else(|| format!("{origin} is not a list of strings")),
        Node::Leaf(l) => Err(format!("{} is not a list of strings", l.origin)),
        Node::Table(_) => Err("a table where a list of strings belongs".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_naming_file_line_and_key() {
        let e = parse(
            "/etc/containerd/config.toml",
            "version = 2\n[plugins.cri.cni]\nbin_dir = 'a'\nbin_dir = 'b'\n",
        )
        .unwrap_err();
        assert!(e.starts_with("/etc/containerd/config.toml line 4: "), "{e}");
        assert!(e.contains("bin_dir"), "{e}");
        assert!(e.contains("defined twice"), "{e}");
        let e = parse("f", "[a]\nx = 1\n[a]\ny = 2\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        // Datetimes are valid TOML (basic-toml would refuse them).
        assert!(parse("f", "x = 1979-05-27T07:32:00Z\n").is_ok());
    }

    #[test]
    fn leaves_remember_where_they_were_written_and_merge_replaces_values() {
        let mut a = parse(
            "/a",
            "[plugins.'io.containerd.cri.v1.runtime'.cni]\nbin_dirs = ['/x']\nconf_dir = '/c'\n",
        )
        .unwrap();
        let b = parse(
            "/b",
            "[plugins]\n\"io.containerd.cri.v1.runtime\".cni.bin_dirs = ['/y', '/z']\n",
        )
        .unwrap();
        merge(&mut a, b);
        let cni = table(&a, &["plugins", "io.containerd.cri.v1.runtime", "cni"]).unwrap();
        let (dirs, o) = strings(cni.get("bin_dirs").unwrap()).unwrap();
        assert_eq!(dirs, ["/y", "/z"]);
        assert_eq!(
            o.to_string(),
            "/b plugins.\"io.containerd.cri.v1.runtime\".cni.bin_dirs"
        );
        let (c, o) = string(cni.get("conf_dir").unwrap()).unwrap();
        assert_eq!((c.as_str(), o.file.as_str()), ("/c", "/a"));
    }
}
