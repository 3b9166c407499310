//! Just enough TOML to read the CNI dirs out of containerd's and CRI-O's configs.
//!
//! Why not the `toml` crate: we need two string keys, and this binary is exec'd once per pod
//! start, so every dependency costs load time on the hot path. What this reader must never do
//! is misread: it tokenizes the whole file properly (strings with escapes, multi-line strings
//! and arrays, inline tables, comments), so a `[table]` inside a string or a `#` inside a
//! path is not taken for structure, and anything it does not understand is an error naming
//! the line (the caller then asks for explicit flags) rather than a guess. Values other than
//! strings and arrays are skipped without being interpreted.

/// A value, reduced to what the callers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Str(String),
    Array(Vec<Val>),
    /// Numbers, booleans, dates, inline tables inside arrays: present, not interpreted.
    Other,
}

impl Val {
    /// The strings of a string or an array of strings.
    pub fn strings(&self) -> Option<Vec<String>> {
        match self {
            Val::Str(s) => Some(vec![s.clone()]),
            Val::Array(items) => items
                .iter()
                .map(|v| match v {
                    Val::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            Val::Other => None,
        }
    }
}

/// Every `key = value` of a document, under its full dotted path.
#[derive(Debug, Default)]
pub struct Doc {
    entries: Vec<(Vec<String>, Val)>,
}

impl Doc {
    /// The value at a full path (table headers plus dotted keys), e.g.
    /// `["plugins", "io.containerd.grpc.v1.cri", "cni", "bin_dir"]`.
    pub fn get(&self, path: &[&str]) -> Option<&Val> {
        self.entries
            .iter()
            .rev()
            .find(|(p, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|(_, v)| v)
    }
}

pub fn parse(text: &str) -> Result<Doc, String> {
    let mut p = Parser {
        s: text.chars().collect(),
        i: 0,
        line: 1,
        depth: 0,
    };
    let mut doc = Doc::default();
    let mut table: Vec<String> = Vec::new();
    loop {
        p.skip_blank_lines();
        let Some(c) = p.peek() else { break };
        if c == '[' {
            p.bump();
            let array_table = p.peek() == Some('[');
            if array_table {
                p.bump();
            }
            p.skip_ws();
            table = p.key()?;
            p.skip_ws();
            p.expect(']')?;
            if array_table {
                p.expect(']')?;
            }
        } else {
            let key = p.key()?;
            p.skip_ws();
            p.expect('=')?;
            p.skip_ws();
            let mut path = table.clone();
            path.extend(key);
            p.value(Some(&path), &mut doc.entries)?;
        }
        p.end_of_line()?;
    }
    Ok(doc)
}

struct Parser {
    s: Vec<char>,
    i: usize,
    line: usize,
    /// Nesting of arrays and inline tables: bounded, so no input can exhaust the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn starts_with(&self, pat: &str) -> bool {
        pat.chars()
            .enumerate()
            .all(|(k, c)| self.peek_at(k) == Some(c))
    }
    fn err(&self, expected: &str) -> String {
        let found = match self.peek() {
            None => "the end of the file".to_string(),
            Some('\n') => "the end of the line".to_string(),
            Some(c) => format!("{c:?}"),
        };
        format!("line {}: expected {expected}, found {found}", self.line)
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(&format!("{c:?}")))
        }
    }
    /// Spaces and tabs only.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }
    fn skip_comment(&mut self) {
        if self.peek() == Some('#') {
            while !matches!(self.peek(), None | Some('\n')) {
                self.bump();
            }
        }
    }
    /// Whitespace, newlines and comments (between statements and inside arrays).
    fn skip_blank_lines(&mut self) {
        loop {
            self.skip_ws();
            self.skip_comment();
            match self.peek() {
                Some('\n') | Some('\r') => {
                    self.bump();
                }
                _ => return,
            }
        }
    }
    fn end_of_line(&mut self) -> Result<(), String> {
        self.skip_ws();
        self.skip_comment();
        if self.peek() == Some('\r') {
            self.bump();
        }
        match self.peek() {
            None => Ok(()),
            Some('\n') => {
                self.bump();
                Ok(())
            }
            _ => Err(self.err("the end of the line")),
        }
    }

    /// A dotted key: `a.b`, `"a.b".c`, `'x' . y`.
    fn key(&mut self) -> Result<Vec<String>, String> {
        let mut parts = vec![self.simple_key()?];
        loop {
            self.skip_ws();
            if self.peek() != Some('.') {
                return Ok(parts);
            }
            self.bump();
            self.skip_ws();
            parts.push(self.simple_key()?);
        }
    }
    fn simple_key(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('"') => self.basic_string(),
            Some('\'') => self.literal_string(),
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.bump();
                }
                if self.i == start {
                    return Err(self.err("a key"));
                }
                Ok(self.s[start..self.i].iter().collect())
            }
        }
    }

    /// A value; recorded under `path` when it is given (inline tables add their own keys).
    fn value(
        &mut self,
        path: Option<&[String]>,
        out: &mut Vec<(Vec<String>, Val)>,
    ) -> Result<(), String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "line {}: arrays or tables nested deeper than {MAX_DEPTH}",
                self.line
            ));
        }
        self.depth += 1;
        let v = self.value_inner(path, out);
        self.depth -= 1;
        v
    }

    fn value_inner(
        &mut self,
        path: Option<&[String]>,
        out: &mut Vec<(Vec<String>, Val)>,
    ) -> Result<(), String> {
        let v = match self.peek() {
            Some('"') if self.starts_with("\"\"\"") => Val::Str(self.multiline_basic()?),
            Some('\'') if self.starts_with("'''") => Val::Str(self.multiline_literal()?),
            Some('"') => Val::Str(self.basic_string()?),
            Some('\'') => Val::Str(self.literal_string()?),
            Some('[') => self.array()?,
            Some('{') => {
                self.inline_table(path, out)?;
                return Ok(());
            }
            _ => {
                self.bare_value()?;
                Val::Other
            }
        };
        if let Some(p) = path {
            out.push((p.to_vec(), v));
        }
        Ok(())
    }

    /// Numbers, booleans, dates: up to the next delimiter.
    fn bare_value(&mut self) -> Result<(), String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, ',' | ']' | '}' | '\n' | '\r' | '#') {
                break;
            }
            // Dates may hold one space ("1979-05-27 07:32:00"); trailing spaces are harmless.
            self.bump();
        }
        if self.s[start..self.i].iter().all(|c| c.is_whitespace()) {
            return Err(self.err("a value"));
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Val, String> {
        self.expect('[')?;
        let mut items = Vec::new();
        loop {
            self.skip_blank_lines();
            if self.peek() == Some(']') {
                self.bump();
                return Ok(Val::Array(items));
            }
            let mut scratch = Vec::new();
            if self.peek() == Some('{') {
                // Inline tables inside arrays are parsed for their extent only.
                self.inline_table(None, &mut scratch)?;
                items.push(Val::Other);
            } else {
                self.value(Some(&[]), &mut scratch)?;
                items.push(scratch.pop().map(|(_, v)| v).unwrap_or(Val::Other));
            }
            self.skip_blank_lines();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {}
                _ => return Err(self.err("',' or ']' in an array")),
            }
        }
    }

    fn inline_table(
        &mut self,
        path: Option<&[String]>,
        out: &mut Vec<(Vec<String>, Val)>,
    ) -> Result<(), String> {
        self.expect('{')?;
        let mut first = true;
        loop {
            // TOML 1.1 allows newlines and trailing commas in inline tables; accept them.
            self.skip_blank_lines();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(());
            }
            if !first {
                self.expect(',')?;
                self.skip_blank_lines();
                if self.peek() == Some('}') {
                    self.bump();
                    return Ok(());
                }
            }
            first = false;
            let key = self.key()?;
            self.skip_ws();
            self.expect('=')?;
            self.skip_ws();
            match path {
                Some(p) => {
                    let mut full = p.to_vec();
                    full.extend(key);
                    self.value(Some(&full), out)?;
                }
                None => self.value(None, out)?,
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        let Some(c) = self.bump() else {
            return Err(self.err("an escape sequence"));
        };
        let hex = |p: &mut Parser, n: usize| -> Result<char, String> {
            let digits: String = (0..n).filter_map(|_| p.bump()).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    format!("line {}: invalid escape with hex digits {digits:?}", p.line)
                })
        };
        Ok(match c {
            'b' => '\u{8}',
            't' => '\t',
            'n' => '\n',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            '"' => '"',
            '\\' => '\\',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            other => {
                return Err(format!(
                    "line {}: unknown escape sequence \\{other}",
                    self.line
                ))
            }
        })
    }

    fn basic_string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut s = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.err("a closing '\"'")),
                Some('"') => {
                    self.bump();
                    return Ok(s);
                }
                Some('\\') => {
                    self.bump();
                    s.push(self.escape()?);
                }
                Some(c) => {
                    self.bump();
                    s.push(c);
                }
            }
        }
    }

    fn literal_string(&mut self) -> Result<String, String> {
        self.expect('\'')?;
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(format!("line {}: unclosed '", self.line)),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    /// Skips the newline right after an opening delimiter, as TOML says.
    fn skip_first_newline(&mut self) {
        if self.starts_with("\r\n") {
            self.bump();
            self.bump();
        } else if self.peek() == Some('\n') {
            self.bump();
        }
    }

    fn multiline_basic(&mut self) -> Result<String, String> {
        for _ in 0..3 {
            self.bump();
        }
        self.skip_first_newline();
        let mut s = String::new();
        loop {
            if self.starts_with("\"\"\"") {
                for _ in 0..3 {
                    self.bump();
                }
                // Up to two quotes may sit right before the closing delimiter.
                while self.peek() == Some('"') {
                    self.bump();
                    s.push('"');
                }
                return Ok(s);
            }
            match self.bump() {
                None => return Err(self.err("a closing '\"\"\"'")),
                Some('\\') => {
                    // A line-ending backslash eats the newline and the whitespace after it.
                    let mut k = 0;
                    while matches!(self.peek_at(k), Some(' ' | '\t' | '\r')) {
                        k += 1;
                    }
                    if self.peek_at(k) == Some('\n') {
                        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
                            self.bump();
                        }
                    } else {
                        s.push(self.escape()?);
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn multiline_literal(&mut self) -> Result<String, String> {
        for _ in 0..3 {
            self.bump();
        }
        self.skip_first_newline();
        let mut s = String::new();
        loop {
            if self.starts_with("'''") {
                for _ in 0..3 {
                    self.bump();
                }
                while self.peek() == Some('\'') {
                    self.bump();
                    s.push('\'');
                }
                return Ok(s);
            }
            match self.bump() {
                None => return Err(self.err("a closing \"'''\"")),
                Some(c) => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(doc: &Doc, path: &[&str]) -> Option<Vec<String>> {
        doc.get(path).and_then(Val::strings)
    }

    #[test]
    fn reads_containerd_v2_tables_with_quoted_keys() {
        let doc = parse(
            r#"version = 2
root = "/var/lib/containerd"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9" # a comment with [brackets]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = '/etc/cni/net.d'
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
"#,
        )
        .unwrap();
        let cri = ["plugins", "io.containerd.grpc.v1.cri", "cni"];
        assert_eq!(
            strs(&doc, &[cri[0], cri[1], cri[2], "bin_dir"]),
            Some(vec!["/opt/cni/bin".to_string()])
        );
        assert_eq!(
            strs(&doc, &[cri[0], cri[1], cri[2], "conf_dir"]),
            Some(vec!["/etc/cni/net.d".to_string()])
        );
        assert_eq!(doc.get(&["version"]), Some(&Val::Other));
    }

    #[test]
    fn reads_dotted_keys_and_inline_tables() {
        let doc = parse(
            "[plugins]\n\"io.containerd.grpc.v1.cri\".cni.bin_dir = \"/a\"\n\
             [x]\ncni = { conf_dir = \"/b\", n = 3, deep = { k = 'v' } }\n",
        )
        .unwrap();
        assert_eq!(
            strs(
                &doc,
                &["plugins", "io.containerd.grpc.v1.cri", "cni", "bin_dir"]
            ),
            Some(vec!["/a".into()])
        );
        assert_eq!(
            strs(&doc, &["x", "cni", "conf_dir"]),
            Some(vec!["/b".into()])
        );
        assert_eq!(
            strs(&doc, &["x", "cni", "deep", "k"]),
            Some(vec!["v".into()])
        );
    }

    #[test]
    fn reads_crio_multiline_arrays_with_comments() {
        let doc = parse(
            "[crio.network]\n\n# Path to the directory where CNI configuration files are located.\n\
             network_dir = \"/etc/cni/net.d/\"\n\n\
             plugin_dirs = [\n\t\"/opt/cni/bin/\", # main\n\t\"/usr/libexec/cni\",\n]\n\
             [crio.metrics]\nenable_metrics = false\n",
        )
        .unwrap();
        assert_eq!(
            strs(&doc, &["crio", "network", "plugin_dirs"]),
            Some(vec!["/opt/cni/bin/".into(), "/usr/libexec/cni".into()])
        );
        assert_eq!(
            strs(&doc, &["crio", "network", "network_dir"]),
            Some(vec!["/etc/cni/net.d/".into()])
        );
    }

    #[test]
    fn structure_inside_strings_is_not_structure() {
        let doc = parse(
            "a = \"\"\"\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = \"/evil\"\n\"\"\"\n\
             b = '''x # y'''\nc = \"q\\\"[t]#\"\n",
        )
        .unwrap();
        assert!(doc
            .get(&["plugins", "io.containerd.grpc.v1.cri", "cni", "bin_dir"])
            .is_none());
        assert_eq!(doc.get(&["b"]), Some(&Val::Str("x # y".into())));
        assert_eq!(doc.get(&["c"]), Some(&Val::Str("q\"[t]#".into())));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("a = 1\n[plugins\nb = 2\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse("a = \"unterminated\nb = 1\n").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
        assert!(parse("a = [1, 2\n").is_err());
        assert!(parse("= 3\n").is_err());
        let deep = format!("a = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn arrays_of_tables_and_other_values_are_skipped() {
        let doc = parse(
            "[[proxy]]\nname = \"p\"\nwhen = 1979-05-27 07:32:00Z\nlist = [{a = 1}, {b = \"c\"}]\n",
        )
        .unwrap();
        assert_eq!(doc.get(&["proxy", "name"]), Some(&Val::Str("p".into())));
        assert_eq!(
            doc.get(&["proxy", "list"]),
            Some(&Val::Array(vec![Val::Other, Val::Other]))
        );
    }
}
