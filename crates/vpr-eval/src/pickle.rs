//! A small pickle reader (protocols 0–5) that keeps what `numpy` arrays need.
//!
//! `serde-pickle` replaces an object's reduce arguments by its `BUILD` state, which loses the dtype
//! string of a pickled `numpy.dtype` (`('f8', False, True)` becomes `(3, '<', None, …)`), so a
//! float64 `bbx` and an int64 one are indistinguishable. This reader keeps every `REDUCE` as
//! [`PyValue::Object`] with its callable, arguments and `BUILD` state, and [`PyValue::to_ndarray`]
//! decodes both ways numpy pickles an array: `numpy.core.multiarray._reconstruct` + `BUILD`
//! (protocols 0–4) and `numpy.core.numeric._frombuffer` (protocol 5, in-band buffers).
//! `_codecs.encode(str, 'latin1')` (bytes under protocol 2 from Python 3) is decoded to bytes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A Python value decoded from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (values beyond `i64` are rejected while reading).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// Python 2 `str` (`STRING`, `BINSTRING`, `SHORT_BINSTRING`): bytes that are usually text.
    Str8(Vec<u8>),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// `list`.
    List(Vec<PyValue>),
    /// `tuple`.
    Tuple(Vec<PyValue>),
    /// `dict`, in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
    /// `set` / `frozenset`.
    Set(Vec<PyValue>),
    /// A module global (`GLOBAL` / `STACK_GLOBAL`).
    Global {
        /// Module.
        module: String,
        /// Name.
        name: String,
    },
    /// An object built by `REDUCE`/`NEWOBJ`/`OBJ`/`INST`, with the state given by `BUILD`.
    Object {
        /// The callable (usually a [`PyValue::Global`]).
        callable: Box<PyValue>,
        /// The arguments.
        args: Vec<PyValue>,
        /// The `BUILD` state, if any.
        state: Option<Box<PyValue>>,
    },
}

/// A decoded numpy array.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values converted to `f64`, C order.
    pub values: Vec<f64>,
    /// Whether the dtype is an integer or bool type.
    pub integer: bool,
    /// The numpy type string, e.g. `<f8`.
    pub descr: String,
}

impl PyValue {
    /// The value of key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Text of a `str` (or a UTF-8 Python 2 string).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            PyValue::Str8(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Raw bytes of `bytes`, `bytearray` or a Python 2 string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            PyValue::Bytes(b) | PyValue::Str8(b) => Some(b),
            _ => None,
        }
    }

    /// Items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(v) | PyValue::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// An integer (also a bool or a numpy integer scalar).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            PyValue::Bool(b) => Some(*b as i64),
            PyValue::Object { .. } => match self.to_ndarray() {
                Some(a) if a.integer && a.values.len() == 1 && a.shape.is_empty() => {
                    Some(a.values[0] as i64)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// A number (int, float, bool or numpy scalar) as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyValue::Int(i) => Some(*i as f64),
            PyValue::Float(f) => Some(*f),
            PyValue::Bool(b) => Some(*b as i64 as f64),
            PyValue::Object { .. } => match self.to_ndarray() {
                Some(a) if a.values.len() == 1 && a.shape.is_empty() => Some(a.values[0]),
                _ => None,
            },
            _ => None,
        }
    }

    fn global_name(&self) -> Option<(&str, &str)> {
        match self {
            PyValue::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// Decodes a pickled `numpy.ndarray` or numpy scalar (`numpy.core.multiarray.scalar`).
    /// Returns `None` if the value is not one (or uses an unsupported dtype such as `object`).
    pub fn to_ndarray(&self) -> Option<NdArray> {
        let PyValue::Object {
            callable,
            args,
            state,
        } = self
        else {
            return None;
        };
        let (module, name) = callable.global_name()?;
        let numpy_mod = module.starts_with("numpy");
        match (numpy_mod, name) {
            (true, "_reconstruct") => {
                // state = (version, shape, dtype, is_fortran, rawdata)
                let st = state.as_deref()?.as_seq()?;
                let st = if st.len() == 5 { &st[1..] } else { st };
                if st.len() != 4 {
                    return None;
                }
                let shape = shape_of(&st[0])?;
                let (descr, kind, size, big) = dtype_of(&st[1])?;
                let fortran = matches!(st[2], PyValue::Bool(true) | PyValue::Int(1));
                let raw = st[3].as_bytes()?;
                decode_array(raw, shape, &descr, kind, size, big, fortran)
            }
            (true, "_frombuffer") => {
                // args = (buffer, dtype, shape, order)
                if args.len() != 4 {
                    return None;
                }
                let raw = args[0].as_bytes()?;
                let (descr, kind, size, big) = dtype_of(&args[1])?;
                let shape = shape_of(&args[2])?;
                let fortran = args[3].as_str() == Some("F");
                decode_array(raw, shape, &descr, kind, size, big, fortran)
            }
            (true, "scalar") => {
                // args = (dtype, bytes)
                if args.len() != 2 {
                    return None;
                }
                let (descr, kind, size, big) = dtype_of(&args[0])?;
                let raw = args[1].as_bytes()?;
                decode_array(raw, vec![], &descr, kind, size, big, false)
            }
            _ => None,
        }
    }
}

fn shape_of(v: &PyValue) -> Option<Vec<usize>> {
    v.as_seq()?
        .iter()
        .map(|d| d.as_i64().and_then(|x| usize::try_from(x).ok()))
        .collect()
}

/// (descr, kind char, size, big endian) of a pickled `numpy.dtype`.
fn dtype_of(v: &PyValue) -> Option<(String, char, usize, bool)> {
    let PyValue::Object {
        callable,
        args,
        state,
    } = v
    else {
        return None;
    };
    let (module, name) = callable.global_name()?;
    if !(module.starts_with("numpy") && name == "dtype") {
        return None;
    }
    let code = args.first()?.as_str()?;
    let mut chars = code.chars();
    let kind = chars.next()?;
    let size: usize = chars.as_str().parse().ok()?;
    // state = (version, byteorder, ...)
    let order = state
        .as_deref()
        .and_then(|s| s.as_seq())
        .and_then(|s| s.get(1))
        .and_then(|o| o.as_str())
        .unwrap_or("|");
    let big = order == ">";
    Some((format!("{order}{code}"), kind, size, big))
}

fn decode_array(
    raw: &[u8],
    shape: Vec<usize>,
    descr: &str,
    kind: char,
    size: usize,
    big: bool,
    fortran: bool,
) -> Option<NdArray> {
    // the element count, checked: a shape whose product overflows is not an array
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    if n.checked_mul(size) != Some(raw.len()) {
        return None;
    }
    let word = |c: &[u8]| -> [u8; 8] {
        let mut b = [0u8; 8];
        if big {
            // right-align big-endian bytes, then read as big endian
            b[8 - size..].copy_from_slice(c);
        } else {
            b[..size].copy_from_slice(c);
        }
        b
    };
    let values: Vec<f64> = match (kind, size) {
        ('f', 8) => raw
            .chunks_exact(8)
            .map(|c| {
                let b = word(c);
                if big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }
            })
            .collect(),
        ('f', 4) => raw
            .chunks_exact(4)
            .map(|c| {
                let b: [u8; 4] = c.try_into().unwrap_or([0; 4]);
                (if big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }) as f64
            })
            .collect(),
        ('i', 1 | 2 | 4 | 8) => raw
            .chunks_exact(size)
            .map(|c| {
                let b = word(c);
                let u = if big {
                    u64::from_be_bytes(b)
                } else {
                    u64::from_le_bytes(b)
                };
                // sign-extend from `size` bytes
                let shift = 64 - 8 * size as u32;
                (((u << shift) as i64) >> shift) as f64
            })
            .collect(),
        ('u' | 'b', 1 | 2 | 4 | 8) => raw
            .chunks_exact(size)
            .map(|c| {
                let b = word(c);
                (if big {
                    u64::from_be_bytes(b)
                } else {
                    u64::from_le_bytes(b)
                }) as f64
            })
            .collect(),
        _ => return None,
    };
    let values = if fortran {
        crate::npy::fortran_to_c_order(values, &shape)
    } else {
        values
    };
    Some(NdArray {
        shape,
        values,
        integer: kind != 'f',
        descr: descr.to_string(),
    })
}

/// Why unpickling failed, and at which byte.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Byte offset of the failing opcode.
    pub offset: usize,
    /// What went wrong.
    pub reason: String,
}

type NodeRef = Rc<RefCell<Node>>;

/// Mutable node of the unpickler's object graph (lists and dicts are shared through the memo).
#[derive(Debug)]
enum Node {
    Leaf(PyValue),
    List(Vec<NodeRef>),
    Tuple(Vec<NodeRef>),
    Dict(Vec<(NodeRef, NodeRef)>),
    Set(Vec<NodeRef>),
    Object {
        callable: NodeRef,
        /// The argument tuple, shared (not copied) with the stack it was popped from.
        args: NodeRef,
        state: Option<NodeRef>,
    },
}

fn leaf(v: PyValue) -> NodeRef {
    Rc::new(RefCell::new(Node::Leaf(v)))
}

const MAX_DEPTH: usize = 200;

/// Copies of shared objects (memo `GET`s, `DUP`s) the conversion to [`PyValue`] may make beyond
/// the objects themselves, in units of one node or eight payload bytes: a fixed allowance plus
/// [`COPIES_PER_INPUT_BYTE`] per byte of input. Real pickles re-reference small objects (a
/// numpy global, a dtype); a "billion laughs" pickle, whose every level references the one
/// below twice, would need 2^depth.
const COPY_ALLOWANCE: usize = 1 << 16;
/// See [`COPY_ALLOWANCE`].
const COPIES_PER_INPUT_BYTE: usize = 2;

/// What converting the object graph to a tree may still copy.
struct Budget {
    seen: std::collections::HashSet<*const RefCell<Node>>,
    copies_left: usize,
}

impl Budget {
    fn for_input(len: usize) -> Self {
        Self {
            seen: std::collections::HashSet::new(),
            copies_left: COPY_ALLOWANCE.saturating_add(len.saturating_mul(COPIES_PER_INPUT_BYTE)),
        }
    }

    /// Charges a visit of `n`: free the first time (every node comes from an opcode of the
    /// input), a copy every other time.
    fn visit(&mut self, n: &NodeRef, node: &Node) -> Result<(), String> {
        if self.seen.insert(Rc::as_ptr(n)) {
            return Ok(());
        }
        let cost = match node {
            Node::Leaf(PyValue::Str(s)) => 1 + s.len() / 8,
            Node::Leaf(PyValue::Str8(b) | PyValue::Bytes(b)) => 1 + b.len() / 8,
            _ => 1,
        };
        self.copies_left = self.copies_left.checked_sub(cost).ok_or_else(|| {
            "shared objects are referenced too often (a pickle bomb?): their copies exceed the budget"
                .to_string()
        })?;
        Ok(())
    }
}

fn to_value(n: &NodeRef, depth: usize, budget: &mut Budget) -> Result<PyValue, String> {
    if depth > MAX_DEPTH {
        return Err("structure nested too deeply (recursive?)".into());
    }
    let node = n
        .try_borrow()
        .map_err(|_| "recursive structure".to_string())?;
    budget.visit(n, &node)?;
    let conv = |v: &[NodeRef], budget: &mut Budget| -> Result<Vec<PyValue>, String> {
        v.iter().map(|x| to_value(x, depth + 1, budget)).collect()
    };
    Ok(match &*node {
        Node::Leaf(v) => v.clone(),
        Node::List(v) => PyValue::List(conv(v, budget)?),
        Node::Tuple(v) => PyValue::Tuple(conv(v, budget)?),
        Node::Set(v) => PyValue::Set(conv(v, budget)?),
        Node::Dict(items) => PyValue::Dict(
            items
                .iter()
                .map(|(k, v)| {
                    Ok((
                        to_value(k, depth + 1, budget)?,
                        to_value(v, depth + 1, budget)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        Node::Object {
            callable,
            args,
            state,
        } => {
            let callable = to_value(callable, depth + 1, budget)?;
            let args = match to_value(args, depth + 1, budget)? {
                PyValue::Tuple(items) => items,
                _ => return Err("REDUCE/NEWOBJ arguments are not a tuple".into()),
            };
            // `_codecs.encode(text, 'latin1')` is how Python 3 pickles bytes under protocol <= 2
            if let (Some(("_codecs", "encode")), [PyValue::Str(text), ..]) =
                (callable.global_name(), args.as_slice())
            {
                return Ok(PyValue::Bytes(
                    text.chars().map(|c| c as u32 as u8).collect(),
                ));
            }
            PyValue::Object {
                callable: Box::new(callable),
                args,
                state: match state {
                    Some(s) => Some(Box::new(to_value(s, depth + 1, budget)?)),
                    None => None,
                },
            }
        }
    })
}

/// Takes the object graph apart without recursion: every node's children are moved to a work
/// list before the node is dropped. Dropping a deeply nested graph the ordinary way recurses
/// once per level and overflows the stack (a 200 kB pickle of `]` … `a` nests 100,000 lists);
/// this also breaks reference cycles (`l.append(l)`), which `Rc` alone would leak.
fn teardown(roots: Vec<NodeRef>) {
    let mut work = roots;
    while let Some(n) = work.pop() {
        if let Ok(mut node) = n.try_borrow_mut() {
            match &mut *node {
                Node::Leaf(_) => {}
                Node::List(v) | Node::Tuple(v) | Node::Set(v) => work.append(v),
                Node::Dict(items) => {
                    for (k, v) in items.drain(..) {
                        work.push(k);
                        work.push(v);
                    }
                }
                Node::Object {
                    callable,
                    args,
                    state,
                } => {
                    work.push(std::mem::replace(callable, leaf(PyValue::None)));
                    work.push(std::mem::replace(args, leaf(PyValue::None)));
                    work.extend(state.take());
                }
            }
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() - self.pos < n {
            return Err(format!(
                "truncated: needs {n} more bytes, {} left",
                self.data.len() - self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn len_u64(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|_| "length overflows usize".to_string())
    }
    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err("truncated: missing end of line".into()),
        }
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string".into())
}

fn long_from_le(bytes: &[u8]) -> Result<i64, String> {
    if bytes.is_empty() {
        return Ok(0);
    }
    if bytes.len() > 8 {
        // accept longer encodings whose extra bytes are pure sign extension
        let sign = if bytes[7] & 0x80 != 0 { 0xff } else { 0 };
        if bytes[8..].iter().any(|&b| b != sign) {
            return Err("integer does not fit in 64 bits".into());
        }
        return long_from_le(&bytes[..8]);
    }
    let mut a = [if bytes[bytes.len() - 1] & 0x80 != 0 {
        0xff
    } else {
        0
    }; 8];
    a[..bytes.len()].copy_from_slice(bytes);
    Ok(i64::from_le_bytes(a))
}

/// Python-literal string of protocol 0 (`'abc'` with backslash escapes) to bytes.
fn unquote(line: &[u8]) -> Result<Vec<u8>, String> {
    let s = line;
    if s.len() < 2 || s[0] != s[s.len() - 1] || !(s[0] == b'\'' || s[0] == b'"') {
        return Err("STRING argument is not quoted".into());
    }
    let inner = &s[1..s.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            let c = inner[i + 1];
            i += 2;
            match c {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'\\' => out.push(b'\\'),
                b'\'' => out.push(b'\''),
                b'"' => out.push(b'"'),
                b'x' if i + 2 <= inner.len() => {
                    let h = std::str::from_utf8(&inner[i..i + 2]).map_err(|e| e.to_string())?;
                    out.push(u8::from_str_radix(h, 16).map_err(|e| e.to_string())?);
                    i += 2;
                }
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// `raw-unicode-escape` decoding (protocol 0 `UNICODE`).
fn raw_unicode_escape(b: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
            let n = if b[i + 1] == b'u' { 4 } else { 8 };
            let hex = b.get(i + 2..i + 2 + n).ok_or("truncated \\u escape")?;
            let code =
                u32::from_str_radix(std::str::from_utf8(hex).map_err(|e| e.to_string())?, 16)
                    .map_err(|e| e.to_string())?;
            out.push(char::from_u32(code).ok_or("invalid code point")?);
            i += 2 + n;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    Ok(out)
}

/// Unpickles `data` into a [`PyValue`].
///
/// Nothing is executed: globals and reduce calls become [`PyValue::Global`] /
/// [`PyValue::Object`]. Every length is checked against the bytes left before it is read, and
/// the conversion of shared objects into a tree is bounded (a copy budget of 65,536 + 2 objects per input byte), so memory
/// stays within a small multiple of `data.len()` whatever the pickle declares.
pub fn unpickle(data: &[u8]) -> Result<PyValue, PickleError> {
    let mut stack: Vec<NodeRef> = Vec::new();
    let mut memo: HashMap<u64, NodeRef> = HashMap::new();
    let result = execute(data, &mut stack, &mut memo);
    let mut roots = stack;
    roots.extend(memo.into_values());
    teardown(roots);
    result
}

fn execute(
    data: &[u8],
    stack: &mut Vec<NodeRef>,
    memo: &mut HashMap<u64, NodeRef>,
) -> Result<PyValue, PickleError> {
    let mut r = Reader { data, pos: 0 };
    let mut marks: Vec<usize> = Vec::new();
    let mut budget = Budget::for_input(data.len());
    loop {
        let start = r.pos;
        let fail = |reason: String| PickleError {
            offset: start,
            reason,
        };
        let op = r
            .u8()
            .map_err(|_| fail("truncated: no STOP opcode".into()))?;
        let res: Result<Option<PyValue>, String> = (|| {
            macro_rules! pop {
                () => {
                    stack.pop().ok_or_else(|| "stack underflow".to_string())?
                };
            }
            macro_rules! pop_mark {
                () => {{
                    let m = marks
                        .pop()
                        .ok_or_else(|| "no MARK on the stack".to_string())?;
                    if m > stack.len() {
                        return Err("MARK above stack top".into());
                    }
                    stack.split_off(m)
                }};
            }
            macro_rules! top {
                () => {
                    stack.last().ok_or_else(|| "stack underflow".to_string())?
                };
            }
            match op {
                0x80 => {
                    let proto = r.u8()?;
                    if proto > 5 {
                        return Err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    r.u64()?; // FRAME length: frames are read transparently
                }
                b'.' => {
                    let v = pop!();
                    let value = to_value(&v, 0, &mut budget);
                    stack.push(v); // torn down with the rest
                    return Ok(Some(value?));
                }
                b'(' => marks.push(stack.len()),
                b'0' => {
                    pop!();
                }
                b'1' => {
                    let _ = pop_mark!();
                }
                b'2' => {
                    let t = top!().clone();
                    stack.push(t);
                }
                b'N' => stack.push(leaf(PyValue::None)),
                0x88 => stack.push(leaf(PyValue::Bool(true))),
                0x89 => stack.push(leaf(PyValue::Bool(false))),
                b'I' => {
                    let l = text(r.line()?)?;
                    let v = match l.as_str() {
                        "00" => PyValue::Bool(false),
                        "01" => PyValue::Bool(true),
                        s => PyValue::Int(s.trim().parse().map_err(|_| format!("bad INT {s:?}"))?),
                    };
                    stack.push(leaf(v));
                }
                b'J' => {
                    let v = r.u32()? as i32;
                    stack.push(leaf(PyValue::Int(v as i64)));
                }
                b'K' => {
                    let v = r.u8()?;
                    stack.push(leaf(PyValue::Int(v as i64)));
                }
                b'M' => {
                    let v = r.u16()?;
                    stack.push(leaf(PyValue::Int(v as i64)));
                }
                b'L' => {
                    let l = text(r.line()?)?;
                    let s = l.trim_end_matches('L');
                    let v = s.parse::<i64>().map_err(|_| format!("bad LONG {l:?}"))?;
                    stack.push(leaf(PyValue::Int(v)));
                }
                0x8a => {
                    let n = r.u8()? as usize;
                    let v = long_from_le(r.take(n)?)?;
                    stack.push(leaf(PyValue::Int(v)));
                }
                0x8b => {
                    let n = r.u32()? as usize;
                    let v = long_from_le(r.take(n)?)?;
                    stack.push(leaf(PyValue::Int(v)));
                }
                b'F' => {
                    let l = text(r.line()?)?;
                    let v = l
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| format!("bad FLOAT {l:?}"))?;
                    stack.push(leaf(PyValue::Float(v)));
                }
                b'G' => {
                    let b = r.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    stack.push(leaf(PyValue::Float(f64::from_be_bytes(a))));
                }
                b'S' => {
                    let b = unquote(r.line()?)?;
                    stack.push(leaf(PyValue::Str8(b)));
                }
                b'T' => {
                    let n = r.u32()? as usize;
                    stack.push(leaf(PyValue::Str8(r.take(n)?.to_vec())));
                }
                b'U' => {
                    let n = r.u8()? as usize;
                    stack.push(leaf(PyValue::Str8(r.take(n)?.to_vec())));
                }
                b'V' => {
                    let s = raw_unicode_escape(r.line()?)?;
                    stack.push(leaf(PyValue::Str(s)));
                }
                b'X' => {
                    let n = r.u32()? as usize;
                    stack.push(leaf(PyValue::Str(text(r.take(n)?)?)));
                }
                0x8c => {
                    let n = r.u8()? as usize;
                    stack.push(leaf(PyValue::Str(text(r.take(n)?)?)));
                }
                0x8d => {
                    let n = r.len_u64()?;
                    stack.push(leaf(PyValue::Str(text(r.take(n)?)?)));
                }
                b'B' => {
                    let n = r.u32()? as usize;
                    stack.push(leaf(PyValue::Bytes(r.take(n)?.to_vec())));
                }
                b'C' => {
                    let n = r.u8()? as usize;
                    stack.push(leaf(PyValue::Bytes(r.take(n)?.to_vec())));
                }
                0x8e | 0x96 => {
                    let n = r.len_u64()?;
                    stack.push(leaf(PyValue::Bytes(r.take(n)?.to_vec())));
                }
                0x97 => return Err("out-of-band buffers (NEXT_BUFFER) are not supported".into()),
                0x98 => {} // READONLY_BUFFER: no-op on an in-band buffer
                b']' => stack.push(Rc::new(RefCell::new(Node::List(vec![])))),
                b')' => stack.push(Rc::new(RefCell::new(Node::Tuple(vec![])))),
                b'}' => stack.push(Rc::new(RefCell::new(Node::Dict(vec![])))),
                0x8f => stack.push(Rc::new(RefCell::new(Node::Set(vec![])))),
                b'l' => {
                    let items = pop_mark!();
                    stack.push(Rc::new(RefCell::new(Node::List(items))));
                }
                b't' => {
                    let items = pop_mark!();
                    stack.push(Rc::new(RefCell::new(Node::Tuple(items))));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Rc::new(RefCell::new(Node::Tuple(items))));
                }
                b'd' => {
                    let items = pop_mark!();
                    if items.len() % 2 != 0 {
                        return Err("DICT with an odd number of items".into());
                    }
                    let pairs = items
                        .chunks_exact(2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect();
                    stack.push(Rc::new(RefCell::new(Node::Dict(pairs))));
                }
                0x91 => {
                    let items = pop_mark!();
                    stack.push(Rc::new(RefCell::new(Node::Set(items))));
                }
                b'a' => {
                    let v = pop!();
                    match &mut *top!().borrow_mut() {
                        Node::List(l) => l.push(v),
                        _ => return Err("APPEND to a non-list".into()),
                    }
                }
                b'e' => {
                    let items = pop_mark!();
                    match &mut *top!().borrow_mut() {
                        Node::List(l) => l.extend(items),
                        _ => return Err("APPENDS to a non-list".into()),
                    }
                }
                b's' => {
                    let v = pop!();
                    let k = pop!();
                    match &mut *top!().borrow_mut() {
                        Node::Dict(d) => d.push((k, v)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = pop_mark!();
                    if items.len() % 2 != 0 {
                        return Err("SETITEMS with an odd number of items".into());
                    }
                    match &mut *top!().borrow_mut() {
                        Node::Dict(d) => {
                            d.extend(items.chunks_exact(2).map(|c| (c[0].clone(), c[1].clone())))
                        }
                        _ => return Err("SETITEMS on a non-dict".into()),
                    }
                }
                0x90 => {
                    let items = pop_mark!();
                    match &mut *top!().borrow_mut() {
                        Node::Set(s) => s.extend(items),
                        _ => return Err("ADDITEMS on a non-set".into()),
                    }
                }
                b'p' => {
                    let id: u64 = text(r.line()?)?
                        .trim()
                        .parse()
                        .map_err(|_| "bad PUT id".to_string())?;
                    memo.insert(id, top!().clone());
                }
                b'q' => {
                    let id = r.u8()? as u64;
                    memo.insert(id, top!().clone());
                }
                b'r' => {
                    let id = r.u32()? as u64;
                    memo.insert(id, top!().clone());
                }
                0x94 => {
                    let id = memo.len() as u64;
                    memo.insert(id, top!().clone());
                }
                b'g' | b'h' | b'j' => {
                    let id = match op {
                        b'g' => text(r.line()?)?
                            .trim()
                            .parse()
                            .map_err(|_| "bad GET id".to_string())?,
                        b'h' => r.u8()? as u64,
                        _ => r.u32()? as u64,
                    };
                    let v = memo
                        .get(&id)
                        .ok_or_else(|| format!("memo key {id} missing"))?
                        .clone();
                    stack.push(v);
                }
                b'c' => {
                    let module = text(r.line()?)?;
                    let name = text(r.line()?)?;
                    stack.push(leaf(PyValue::Global { module, name }));
                }
                0x93 => {
                    let name = pop!();
                    let module = pop!();
                    let global = match (&*module.borrow(), &*name.borrow()) {
                        (Node::Leaf(PyValue::Str(m)), Node::Leaf(PyValue::Str(n))) => {
                            PyValue::Global {
                                module: m.clone(),
                                name: n.clone(),
                            }
                        }
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    };
                    stack.push(leaf(global));
                }
                b'R' | 0x81 => {
                    let args = pop!();
                    let callable = pop!();
                    if !matches!(&*args.borrow(), Node::Tuple(_)) {
                        return Err("REDUCE/NEWOBJ arguments are not a tuple".into());
                    }
                    stack.push(Rc::new(RefCell::new(Node::Object {
                        callable,
                        args,
                        state: None,
                    })));
                }
                0x92 => {
                    let _kwargs = pop!();
                    let args = pop!();
                    let callable = pop!();
                    if !matches!(&*args.borrow(), Node::Tuple(_)) {
                        return Err("NEWOBJ_EX arguments are not a tuple".into());
                    }
                    stack.push(Rc::new(RefCell::new(Node::Object {
                        callable,
                        args,
                        state: None,
                    })));
                }
                b'o' => {
                    let mut items = pop_mark!();
                    if items.is_empty() {
                        return Err("OBJ without a class".into());
                    }
                    let callable = items.remove(0);
                    stack.push(Rc::new(RefCell::new(Node::Object {
                        callable,
                        args: Rc::new(RefCell::new(Node::Tuple(items))),
                        state: None,
                    })));
                }
                b'i' => {
                    let module = text(r.line()?)?;
                    let name = text(r.line()?)?;
                    let args = pop_mark!();
                    stack.push(Rc::new(RefCell::new(Node::Object {
                        callable: leaf(PyValue::Global { module, name }),
                        args: Rc::new(RefCell::new(Node::Tuple(args))),
                        state: None,
                    })));
                }
                b'b' => {
                    let st = pop!();
                    // BUILD on a plain container (rare) keeps the container
                    if let Node::Object { state, .. } = &mut *top!().borrow_mut() {
                        *state = Some(st);
                    }
                }
                b'P' | b'Q' => return Err("persistent ids are not supported".into()),
                0x82..=0x84 => return Err("extension registry opcodes are not supported".into()),
                other => return Err(format!("unknown opcode 0x{other:02x}")),
            }
            Ok(None)
        })();
        match res {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(reason) => return Err(fail(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /* Equivalent python code:
    import pickle; pickle.dumps({'a': [1, -2, 3.5, None, True], 'b': (b'xy', 'z')}, protocol=2)
    */
    #[test]
    fn decodes_basic_protocol_2() {
        let data: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03c_codecs\nencode\nq\x04X\x02\x00\x00\x00xyq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08X\x01\x00\x00\x00zq\t\x86q\nu.";
        let v = unpickle(data).unwrap();
        assert_eq!(
            v.get("a").unwrap(),
            &PyValue::List(vec![
                PyValue::Int(1),
                PyValue::Int(-2),
                PyValue::Float(3.5),
                PyValue::None,
                PyValue::Bool(true)
            ])
        );
        assert_eq!(
            v.get("b").unwrap(),
            &PyValue::Tuple(vec![
                PyValue::Bytes(b"xy".to_vec()),
                PyValue::Str("z".into())
            ])
        );
    }

    #[test]
    fn truncation_is_an_error_with_offset() {
        let data: &[u8] = b"\x80\x02]q\x00(K\x01K\x02e";
        let err = unpickle(data).unwrap_err();
        assert!(err.reason.contains("truncated"), "{err:?}");
        let err = unpickle(&data[..5]).unwrap_err();
        assert!(err.offset <= 5);
    }

    #[test]
    fn long1_sign_extension() {
        assert_eq!(long_from_le(&[0xff]).unwrap(), -1);
        assert_eq!(long_from_le(&[0x00, 0x01]).unwrap(), 256);
        assert_eq!(long_from_le(&[0xff, 0x00]).unwrap(), 255);
    }
}
