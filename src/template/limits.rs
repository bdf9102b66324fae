//! What one pipeline's templates may cost, and the guards that enforce it.
//!
//! A template is code from the pipeline file, so rendering is bounded: every value runs on a
//! fuel budget (instructions) and an output budget (bytes), the values a template produces
//! are measured before anything converts or prints them, and a pipeline's templates share a
//! total budget, so a file of many heavy templates stops too. Filters that walk a whole
//! sequence refuse one larger than the output budget (`([1] * 1000) * 1000000` is lazy and
//! cheap to build, but not to sum or join).

use std::cell::Cell;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once};

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::trace::Recorder;

/// Instructions one rendered value may execute (each loop iteration costs a few).
pub const MAX_FUEL: u64 = 1_000_000;
/// Instructions all the templates of one pipeline may execute together.
pub const MAX_TOTAL_FUEL: u64 = 20_000_000;
/// Bytes one rendered value may have (its text, or the size of the value it produces).
pub const MAX_OUTPUT: usize = 4 << 20;
/// Bytes all the rendered values of one pipeline may have together.
pub const MAX_TOTAL_OUTPUT: usize = 64 << 20;
/// How deeply lists and maps that templates produce may nest.
pub const MAX_VALUE_DEPTH: usize = 64;
/// Template errors after which the later templates of a pipeline are not rendered.
pub const MAX_TEMPLATE_ERRORS: usize = 50;

/// The built-in filters that walk their whole input, guarded by [`measure`].
const WALKING_FILTERS: &[&str] = &[
    "batch",
    "capitalize",
    "chain",
    "dictsort",
    "e",
    "escape",
    "format",
    "groupby",
    "indent",
    "items",
    "join",
    "last",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
    "zip",
];

/// What the templates of one pipeline have spent so far.
#[derive(Debug, Default)]
pub(super) struct Budget {
    spent: Mutex<Spent>,
}

#[derive(Debug, Default)]
struct Spent {
    fuel: u64,
    output: usize,
    errors: usize,
    /// Set once a total is used up: why later templates are not rendered.
    exhausted: Option<String>,
}

impl Budget {
    fn spent(&self) -> std::sync::MutexGuard<'_, Spent> {
        self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(reason)` once a total is used up.
    pub(super) fn exhausted(&self) -> Option<String> {
        self.spent().exhausted.clone()
    }

    /// Books a successful render. Returns the reason when it used up a total.
    pub(super) fn spend(&self, fuel: u64, output: usize) -> Option<String> {
        let mut s = self.spent();
        s.fuel += fuel;
        s.output += output;
        if s.exhausted.is_none() && s.fuel > MAX_TOTAL_FUEL {
            s.exhausted = Some(format!(
                "the templates of this pipeline ran more than {MAX_TOTAL_FUEL} instructions in all; later templates were not rendered"
            ));
        } else if s.exhausted.is_none() && s.output > MAX_TOTAL_OUTPUT {
            s.exhausted = Some(format!(
                "the templates of this pipeline rendered more than {} in all; later templates were not rendered",
                size_text(MAX_TOTAL_OUTPUT)
            ));
        }
        s.exhausted.clone()
    }

    /// Books a failed render (it may have used its whole fuel).
    pub(super) fn fail(&self) {
        let mut s = self.spent();
        s.errors += 1;
        if s.exhausted.is_none() && s.errors >= MAX_TEMPLATE_ERRORS {
            s.exhausted = Some(format!(
                "{MAX_TEMPLATE_ERRORS} template errors; later templates were not rendered"
            ));
        }
    }
}

/// `4 MiB`, for messages.
pub fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// An output buffer that refuses to grow past a limit.
pub(super) struct BoundedWriter {
    pub(super) buf: Vec<u8>,
    limit: usize,
    pub(super) exceeded: bool,
    /// Where each write came from (see [`super::trace`]).
    pub(super) recorder: Recorder,
}

impl BoundedWriter {
    pub(super) fn new(limit: usize, source: &str) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            exceeded: false,
            recorder: Recorder::new(source),
        }
    }
}

impl io::Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("template output limit reached"));
        }
        self.recorder.write(self.buf.len(), data);
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a value is too big to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooBig {
    /// More than `limit` bytes when written out.
    Size(usize),
    /// Nested deeper than [`MAX_VALUE_DEPTH`].
    Depth,
}

impl std::fmt::Display for TooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TooBig::Size(limit) => write!(f, "larger than {}", size_text(*limit)),
            TooBig::Depth => write!(f, "nested more than {MAX_VALUE_DEPTH} levels deep"),
        }
    }
}

/// Roughly how many bytes a value takes when written out, walking at most `limit` bytes'
/// worth of it (lazy sequences included), so measuring is cheap whatever the value.
pub fn measure(value: &Value, limit: usize) -> Result<usize, TooBig> {
    let mut left = limit;
    walk(value, 0, &mut left, limit)?;
    Ok(limit - left)
}

fn take(left: &mut usize, n: usize, limit: usize) -> Result<(), TooBig> {
    *left = left.checked_sub(n).ok_or(TooBig::Size(limit))?;
    Ok(())
}

fn walk(value: &Value, depth: usize, left: &mut usize, limit: usize) -> Result<(), TooBig> {
    match value.kind() {
        ValueKind::String | ValueKind::Bytes => {
            take(left, value.as_bytes().map_or(0, <[u8]>::len) + 2, limit)
        }
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
            if depth >= MAX_VALUE_DEPTH {
                return Err(TooBig::Depth);
            }
            take(left, 2, limit)?;
            let is_map = value.kind() == ValueKind::Map;
            let Ok(items) = value.try_iter() else {
                return Ok(());
            };
            for item in items {
                take(left, 2, limit)?;
                walk(&item, depth + 1, left, limit)?;
                if is_map {
                    let v = value.get_item(&item).unwrap_or_default();
                    walk(&v, depth + 1, left, limit)?;
                }
            }
            Ok(())
        }
        _ => take(left, 8, limit),
    }
}

/// Writes `{{ value }}` output only for values within [`MAX_OUTPUT`]: a lazy sequence of a
/// billion items is refused before the engine starts writing it out.
pub(super) fn guard_output(env: &mut Environment<'static>) {
    env.set_formatter(|out, state, value| {
        if !matches!(value.kind(), ValueKind::String | ValueKind::Number) {
            measure(value, MAX_OUTPUT).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("the value written here is {e}"),
                )
            })?;
        }
        minijinja::escape_formatter(out, state, value)
    });
}

/// Replaces the built-in filters that walk a whole sequence with ones that first check
/// that their input and arguments are within [`MAX_OUTPUT`].
pub(super) fn guard_filters(env: &mut Environment<'static>) {
    for name in WALKING_FILTERS {
        let Some(original) = builtin(name) else {
            continue;
        };
        env.add_filter(
            *name,
            move |state: &State, value: Value, rest: Rest<Value>| -> Result<Value, Error> {
                for v in std::iter::once(&value).chain(rest.0.iter()) {
                    if v.is_kwargs() {
                        continue;
                    }
                    measure(v, MAX_OUTPUT).map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            format!("the input of `{name}` is {e}"),
                        )
                    })?;
                }
                let mut args = Vec::with_capacity(rest.0.len() + 1);
                args.push(value);
                args.extend(rest.0);
                original.call(state, &args)
            },
        );
    }
}

/// The built-in filter of that name, as a callable value.
fn builtin(name: &str) -> Option<Value> {
    use minijinja::filters as f;
    Some(match name {
        "batch" => Value::from_function(f::batch),
        "capitalize" => Value::from_function(f::capitalize),
        "chain" => Value::from_function(f::chain),
        "dictsort" => Value::from_function(f::dictsort),
        "e" | "escape" => Value::from_function(f::escape),
        "format" => Value::from_function(f::format),
        "groupby" => Value::from_function(f::groupby),
        "indent" => Value::from_function(f::indent),
        "items" => Value::from_function(f::items),
        "join" => Value::from_function(f::join),
        "last" => Value::from_function(f::last),
        "list" => Value::from_function(f::list),
        "lower" => Value::from_function(f::lower),
        "map" => Value::from_function(f::map),
        "max" => Value::from_function(f::max),
        "min" => Value::from_function(f::min),
        "pprint" => Value::from_function(f::pprint),
        "reject" => Value::from_function(f::reject),
        "rejectattr" => Value::from_function(f::rejectattr),
        "replace" => Value::from_function(f::replace),
        "reverse" => Value::from_function(f::reverse),
        "safe" => Value::from_function(f::safe),
        "select" => Value::from_function(f::select),
        "selectattr" => Value::from_function(f::selectattr),
        "slice" => Value::from_function(f::slice),
        "sort" => Value::from_function(f::sort),
        "string" => Value::from_function(f::string),
        "sum" => Value::from_function(f::sum),
        "title" => Value::from_function(f::title),
        "trim" => Value::from_function(f::trim),
        "unique" => Value::from_function(f::unique),
        "upper" => Value::from_function(f::upper),
        "zip" => Value::from_function(f::zip),
        _ => return None,
    })
}

thread_local! {
    /// True while this thread renders a template: a panic then is reported as an error.
    static RENDERING: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs a render, turning a panic inside the template engine into an error message (and
/// keeping the panic message off standard error).
pub(super) fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !RENDERING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = RENDERING.with(|r| r.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    RENDERING.with(|r| r.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal error".into())
    })
}
