//! Lua 5.4's pattern matching (`lstrlib.c`), ported to Rust with a step budget, and the
//! `string.find`, `string.match`, `string.gmatch` and `string.gsub` every Lua state gets in
//! place of the C ones.
//!
//! Why: the C matcher runs inside one C call, where the instruction-count hook that enforces
//! the run limit never fires, and backtracking patterns cost O(n^k) for k `.-`/`.*` items, so
//! `string.find(("a"):rep(40000), "^(.-)(.-)!$")` ran for seconds past the limit. Here every
//! attempt of `match` and every step of the expansion loops is counted, and a call that goes
//! over [`STEP_BUDGET`] raises an error instead. The host's own `wx.on("text", pattern, …)`
//! filter uses [`find`] directly.
//!
//! The port keeps the C structure (`do_match` is `match`, with its `goto init` as a loop) so
//! it can be checked line by line against `lstrlib.c`; the tests compare it with the C
//! functions on generated patterns.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use mlua::{
    ffi, Function, LightUserData, Lua, LuaString, MultiValue, Result as LuaResult, Table, Value,
};

use crate::script::run_limit::RunClock;

/// Steps one call may take (one `gmatch` iterator counts as one call for its whole loop).
/// The worst cases measured (`^(.-)(.-)!$` on 40 KB) reach it after 60–95 ms of CPU in a
/// release build on a 2-core machine under a load of 7, so a few tens of ms when idle; a
/// `gsub` of a simple pattern over 1 MiB takes 1.2–1.9 million steps (see
/// `ordinary_work_is_far_inside_the_budget`).
pub const STEP_BUDGET: u64 = 10_000_000;

/// `LUA_MAXCAPTURES`.
const MAX_CAPTURES: usize = 32;
/// `MAXCCALLS`: how deep `match` may recurse before "pattern too complex".
const MAX_MATCH_DEPTH: u32 = 200;
/// `L_ESC`.
const ESC: u8 = b'%';
/// `SPECIALS`: a pattern without any of these is searched as plain text.
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// Why a pattern call failed: Lua's own message for a malformed pattern, or the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern (or a replacement string) is malformed, with Lua's exact message.
    #[error("{0}")]
    Malformed(String),
    /// The call took more than its step budget.
    #[error(
        "pattern matching exceeded its budget of {budget} steps (subject of {subject_len} bytes)"
    )]
    Budget {
        /// The budget that was exceeded.
        budget: u64,
        /// Length of the subject, to tell a huge subject from a costly pattern.
        subject_len: usize,
    },
}

fn malformed(message: impl Into<String>) -> PatternError {
    PatternError::Malformed(message.into())
}

/// One capture of a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// The bytes `start..end` of the subject.
    Text(usize, usize),
    /// A position capture `()`: the 1-based position in the subject.
    Position(usize),
}

/// A match found by [`find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// 0-based start of the match.
    pub start: usize,
    /// 0-based end (exclusive) of the match.
    pub end: usize,
    /// The pattern's captures (none when it has no captures).
    pub captures: Vec<Capture>,
}

/// A capture slot: where it starts and its length, or one of the two markers below.
#[derive(Debug, Clone, Copy)]
struct Slot {
    init: usize,
    len: isize,
}

/// `CAP_UNFINISHED`.
const CAP_UNFINISHED: isize = -1;
/// `CAP_POSITION`.
const CAP_POSITION: isize = -2;

/// `MatchState` of `lstrlib.c`, plus the step budget.
struct MatchState<'a> {
    src: &'a [u8],
    pat: &'a [u8],
    depth: u32,
    level: usize,
    capture: [Slot; MAX_CAPTURES],
    remaining: u64,
    budget: u64,
}

impl<'a> MatchState<'a> {
    fn new(src: &'a [u8], pat: &'a [u8], budget: u64) -> Self {
        MatchState {
            src,
            pat,
            depth: MAX_MATCH_DEPTH,
            level: 0,
            capture: [Slot { init: 0, len: 0 }; MAX_CAPTURES],
            remaining: budget,
            budget,
        }
    }

    /// `reprepstate`: before each attempt at a new position.
    fn reprep(&mut self) {
        self.depth = MAX_MATCH_DEPTH;
        self.level = 0;
    }

    fn step(&mut self, n: u64) -> Result<(), PatternError> {
        match self.remaining.checked_sub(n) {
            Some(left) => {
                self.remaining = left;
                Ok(())
            }
            None => {
                self.remaining = 0;
                Err(PatternError::Budget {
                    budget: self.budget,
                    subject_len: self.src.len(),
                })
            }
        }
    }

    /// The pattern byte at `i`, or the terminating NUL C reads at the end.
    fn pat_at(&self, i: usize) -> u8 {
        self.pat.get(i).copied().unwrap_or(0)
    }

    /// The subject byte at `i`, or the terminating NUL C reads at the end.
    fn src_at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn check_capture(&self, l: u8) -> Result<usize, PatternError> {
        let l = i32::from(l) - i32::from(b'1');
        match usize::try_from(l) {
            Ok(i) if i < self.level && self.capture[i].len != CAP_UNFINISHED => Ok(i),
            _ => Err(malformed(format!("invalid capture index %{}", l + 1))),
        }
    }

    fn capture_to_close(&self) -> Result<usize, PatternError> {
        (0..self.level)
            .rev()
            .find(|&l| self.capture[l].len == CAP_UNFINISHED)
            .ok_or_else(|| malformed("invalid pattern capture"))
    }

    /// `classEnd`: the index just past the single-character class at `p`.
    fn class_end(&self, p: usize) -> Result<usize, PatternError> {
        let c = self.pat[p];
        let mut p = p + 1;
        match c {
            ESC => {
                if p == self.pat.len() {
                    return Err(malformed("malformed pattern (ends with '%')"));
                }
                Ok(p + 1)
            }
            b'[' => {
                if self.pat_at(p) == b'^' {
                    p += 1;
                }
                loop {
                    if p == self.pat.len() {
                        return Err(malformed("malformed pattern (missing ']')"));
                    }
                    let c = self.pat[p];
                    p += 1;
                    if c == ESC && p < self.pat.len() {
                        p += 1; // skip escapes (e.g. '%]')
                    }
                    if self.pat_at(p) == b']' {
                        break;
                    }
                }
                Ok(p + 1)
            }
            _ => Ok(p),
        }
    }

    /// `matchbracketclass`: `p` is the `[`, `ec` the closing `]`.
    fn match_bracket_class(&self, c: u8, p: usize, ec: usize) -> bool {
        let mut p = p;
        let mut sig = true;
        if self.pat[p + 1] == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                break;
            }
            if self.pat[p] == ESC {
                p += 1;
                if match_class(c, self.pat[p]) {
                    return sig;
                }
            } else if self.pat[p + 1] == b'-' && p + 2 < ec {
                p += 2;
                if self.pat[p - 2] <= c && c <= self.pat[p] {
                    return sig;
                }
            } else if self.pat[p] == c {
                return sig;
            }
        }
        !sig
    }

    fn single_match(&self, s: usize, p: usize, ep: usize) -> bool {
        let Some(&c) = self.src.get(s) else {
            return false;
        };
        match self.pat[p] {
            b'.' => true,
            ESC => match_class(c, self.pat[p + 1]),
            b'[' => self.match_bracket_class(c, p, ep - 1),
            other => other == c,
        }
    }

    fn match_balance(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if p + 1 >= self.pat.len() {
            return Err(malformed("malformed pattern (missing arguments to '%b')"));
        }
        if self.src_at(s) != self.pat[p] {
            return Ok(None);
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        let mut depth = 1usize;
        let mut s = s;
        loop {
            s += 1;
            if s >= self.src.len() {
                return Ok(None); // the subject ends out of balance
            }
            self.step(1)?;
            let c = self.src[s];
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(s + 1));
                }
            } else if c == open {
                depth += 1;
            }
        }
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Result<Option<usize>, PatternError> {
        let mut i = 0usize;
        while self.single_match(s + i, p, ep) {
            self.step(1)?;
            i += 1;
        }
        // Try the rest of the pattern with the most repetitions first.
        loop {
            if let Some(end) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(end));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(&mut self, s: usize, p: usize, ep: usize) -> Result<Option<usize>, PatternError> {
        let mut s = s;
        loop {
            if let Some(end) = self.do_match(s, ep + 1)? {
                return Ok(Some(end));
            }
            if !self.single_match(s, p, ep) {
                return Ok(None);
            }
            self.step(1)?;
            s += 1; // one more repetition
        }
    }

    fn start_capture(
        &mut self,
        s: usize,
        p: usize,
        what: isize,
    ) -> Result<Option<usize>, PatternError> {
        let level = self.level;
        if level >= MAX_CAPTURES {
            return Err(malformed("too many captures"));
        }
        self.capture[level] = Slot { init: s, len: what };
        self.level = level + 1;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.level -= 1; // undo the capture
        }
        Ok(res)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        let l = self.capture_to_close()?;
        self.capture[l].len = (s - self.capture[l].init) as isize;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.capture[l].len = CAP_UNFINISHED; // undo the capture
        }
        Ok(res)
    }

    fn match_capture(&mut self, s: usize, l: u8) -> Result<Option<usize>, PatternError> {
        let l = self.check_capture(l)?;
        let Slot { init, len } = self.capture[l];
        // A position capture has a negative length, which C compares as a huge size_t.
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        if self.src.len() - s < len {
            return Ok(None);
        }
        // Comparing is fast, but a back-reference can compare the whole subject each time.
        self.step(1 + (len / 32) as u64)?;
        if self.src[init..init + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    /// `match`: the end of the match of `pat[p..]` at `src[s..]`, if any.
    fn do_match(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if self.depth == 0 {
            return Err(malformed("pattern too complex"));
        }
        self.depth -= 1;
        let (mut s, mut p) = (s, p);
        let result = loop {
            self.step(1)?;
            if p == self.pat.len() {
                break Some(s);
            }
            match self.pat[p] {
                b'(' => {
                    break if self.pat_at(p + 1) == b')' {
                        self.start_capture(s, p + 2, CAP_POSITION)?
                    } else {
                        self.start_capture(s, p + 1, CAP_UNFINISHED)?
                    };
                }
                b')' => break self.end_capture(s, p + 1)?,
                b'$' if p + 1 == self.pat.len() => {
                    break (s == self.src.len()).then_some(s);
                }
                ESC if self.pat_at(p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(end) => {
                        s = end;
                        p += 4;
                        continue;
                    }
                    None => break None,
                },
                ESC if self.pat_at(p + 1) == b'f' => {
                    p += 2;
                    if self.pat_at(p) != b'[' {
                        return Err(malformed("missing '[' after '%f' in pattern"));
                    }
                    let ep = self.class_end(p)?;
                    let previous = if s == 0 { 0 } else { self.src[s - 1] };
                    if !self.match_bracket_class(previous, p, ep - 1)
                        && self.match_bracket_class(self.src_at(s), p, ep - 1)
                    {
                        p = ep;
                        continue;
                    }
                    break None;
                }
                ESC if self.pat_at(p + 1).is_ascii_digit() => {
                    match self.match_capture(s, self.pat[p + 1])? {
                        Some(end) => {
                            s = end;
                            p += 2;
                            continue;
                        }
                        None => break None,
                    }
                }
                _ => {
                    // A single-character class plus an optional suffix.
                    let ep = self.class_end(p)?;
                    let suffix = self.pat_at(ep);
                    if !self.single_match(s, p, ep) {
                        if matches!(suffix, b'*' | b'?' | b'-') {
                            p = ep + 1; // accepts empty
                            continue;
                        }
                        break None;
                    }
                    match suffix {
                        b'?' => {
                            if let Some(end) = self.do_match(s + 1, ep + 1)? {
                                break Some(end);
                            }
                            p = ep + 1;
                            continue;
                        }
                        b'+' => break self.max_expand(s + 1, p, ep)?,
                        b'*' => break self.max_expand(s, p, ep)?,
                        b'-' => break self.min_expand(s, p, ep)?,
                        _ => {
                            s += 1;
                            p = ep;
                            continue;
                        }
                    }
                }
            }
        };
        self.depth += 1;
        Ok(result)
    }

    /// `get_onecapture`: capture `i`, or the whole match `s..e` when there are no captures.
    fn get_capture(&self, i: usize, s: usize, e: usize) -> Result<Capture, PatternError> {
        if i >= self.level {
            if i != 0 {
                return Err(malformed(format!("invalid capture index %{}", i + 1)));
            }
            return Ok(Capture::Text(s, e));
        }
        let Slot { init, len } = self.capture[i];
        match len {
            CAP_UNFINISHED => Err(malformed("unfinished capture")),
            CAP_POSITION => Ok(Capture::Position(init + 1)),
            len => Ok(Capture::Text(init, init + len as usize)),
        }
    }

    /// `push_captures`: all captures, or the whole match when there are none and `whole`
    /// is given (`find` passes none).
    fn captures(&self, whole: Option<(usize, usize)>) -> Result<Vec<Capture>, PatternError> {
        let (s, e) = whole.unwrap_or((0, 0));
        let count = if self.level == 0 && whole.is_some() {
            1
        } else {
            self.level
        };
        (0..count).map(|i| self.get_capture(i, s, e)).collect()
    }
}

/// `match_class`, with C's `<ctype.h>` in the "C" locale.
fn match_class(c: u8, class: u8) -> bool {
    let res = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        // C's isspace also takes '\v', which Rust's is_ascii_whitespace does not.
        b's' => matches!(c, b' ' | b'\t'..=b'\r'),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,
        _ => return class == c,
    };
    if class.is_ascii_lowercase() {
        res
    } else {
        !res
    }
}

/// Whether the pattern has no magic characters, so `find` may search it as plain text.
fn has_no_specials(pattern: &[u8]) -> bool {
    !pattern.iter().any(|b| SPECIALS.contains(b))
}

/// `lmemfind`: the first occurrence of `needle` in `haystack`.
fn plain_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `posrelatI`: a 1-based, possibly negative position made a 1-based position (0 → 1).
fn relative_start(pos: i64, len: usize) -> usize {
    if pos > 0 {
        usize::try_from(pos).unwrap_or(usize::MAX)
    } else if pos == 0 || pos.unsigned_abs() > len as u64 {
        1
    } else {
        len - pos.unsigned_abs() as usize + 1
    }
}

/// The two searches of `str_find_aux`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// `string.find`: positions, then the captures.
    Find,
    /// `string.match`: the captures, or the whole match.
    Match,
}

/// What `str_find_aux` found: for `find` the range and the explicit captures; for `match`
/// the captures or the whole match.
fn find_aux(
    subject: &[u8],
    pattern: &[u8],
    init: usize,
    plain: bool,
    search: Search,
    budget: u64,
) -> Result<Option<Found>, PatternError> {
    if init > subject.len() {
        return Ok(None); // starts after the subject's end
    }
    if search == Search::Find && (plain || has_no_specials(pattern)) {
        return Ok(plain_find(&subject[init..], pattern).map(|at| Found {
            start: init + at,
            end: init + at + pattern.len(),
            captures: Vec::new(),
        }));
    }
    let anchor = pattern.first() == Some(&b'^');
    let pattern = if anchor { &pattern[1..] } else { pattern };
    let mut ms = MatchState::new(subject, pattern, budget);
    let mut s1 = init;
    loop {
        ms.reprep();
        if let Some(end) = ms.do_match(s1, 0)? {
            let whole = (search == Search::Match).then_some((s1, end));
            return Ok(Some(Found {
                start: s1,
                end,
                captures: ms.captures(whole)?,
            }));
        }
        s1 += 1;
        if s1 > subject.len() || anchor {
            return Ok(None);
        }
    }
}

/// `string.find(subject, pattern, init)` as Lua 5.4 does it (`init` 1-based, negative from
/// the end), within [`STEP_BUDGET`]: the host's text filter.
pub fn find(subject: &[u8], pattern: &[u8], init: i64) -> Result<Option<Found>, PatternError> {
    let init = relative_start(init, subject.len()) - 1;
    find_aux(subject, pattern, init, false, Search::Find, STEP_BUDGET)
}

// ---------------------------------------------------------------------------------------
// The Lua functions.
// ---------------------------------------------------------------------------------------

/// Markers a Rust function returns first, instead of failing, to have [`raise_results`]
/// raise the value after them: a message to locate, or a value to raise unchanged. (An error
/// returned from a Rust callback would reach `pcall` as a userdata, not as the string the C
/// functions raise.)
static RAISE_MESSAGE: u8 = 0;
static RAISE_VALUE: u8 = 0;

fn marker(which: &'static u8) -> Value {
    Value::LightUserData(LightUserData(std::ptr::from_ref(which) as *mut c_void))
}

/// The C function scripts call: it calls the Rust function in its upvalue and raises what
/// that reports, as `luaL_error` would. It is a C function, not a Lua wrapper, so that frame
/// 1 is the script's frame even after `return s:find(p)` (a tail call replaces a Lua
/// caller's frame, but not when the callee is a C function), and the message names the
/// script's line.
unsafe extern "C-unwind" fn raise_results(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a C closure made by `wrap`, whose upvalue 1 is the Rust
    // function. Lua guarantees LUA_MINSTACK free slots on entry, and `luaL_checkstack`
    // provides the two more used before raising. This frame holds nothing to drop, so the
    // error jumps of `lua_call` and `lua_error` may cross it.
    unsafe {
        let nargs = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, nargs, ffi::LUA_MULTRET);
        let nresults = ffi::lua_gettop(state);
        if nresults == 2 && ffi::lua_type(state, 1) == ffi::LUA_TLIGHTUSERDATA {
            let which = ffi::lua_touserdata(state, 1).cast_const();
            if std::ptr::eq(which, std::ptr::from_ref(&RAISE_MESSAGE).cast()) {
                ffi::luaL_checkstack(state, 2, std::ptr::null());
                ffi::luaL_where(state, 1);
                ffi::lua_pushvalue(state, 2);
                ffi::lua_concat(state, 2);
                ffi::lua_error(state);
            }
            if std::ptr::eq(which, std::ptr::from_ref(&RAISE_VALUE).cast()) {
                ffi::lua_settop(state, 2);
                ffi::lua_error(state);
            }
        }
        nresults
    }
}

/// `function` as a C closure through [`raise_results`].
fn wrap(lua: &Lua, function: Function) -> LuaResult<Function> {
    // SAFETY: pops the function `exec_raw` pushed and pushes one closure over it.
    unsafe {
        lua.exec_raw(function, |state| {
            ffi::lua_pushcclosure(state, raise_results, 1);
        })
    }
}

/// A failure to hand to the wrapper: Lua's message (given the caller's location, as
/// `luaL_error` adds it), a value raised by a replacement function (raised again unchanged),
/// or an error of mlua itself (such as running out of memory).
enum Raise {
    Message(String),
    Value(Value),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Raise {
    fn from(e: mlua::Error) -> Self {
        Raise::Lua(e)
    }
}

impl From<PatternError> for Raise {
    fn from(e: PatternError) -> Self {
        Raise::Message(e.to_string())
    }
}

type Outcome<T> = Result<T, Raise>;

/// Replaces the pattern functions of the state's `string` table (which is also the strings'
/// `__index`, so `s:find(...)` is covered) with the budgeted ones.
pub fn install(lua: &Lua) -> LuaResult<()> {
    let string: Table = lua.globals().get("string")?;
    // The original `pcall`, in case a script replaces the global.
    let pcall: Function = lua.globals().get("pcall")?;

    let find = lua.create_function(|lua, args: MultiValue| {
        finish(lua, lua_find(lua, &args, Search::Find, "find"))
    })?;
    let match_ = lua.create_function(|lua, args: MultiValue| {
        finish(lua, lua_find(lua, &args, Search::Match, "match"))
    })?;
    let gmatch =
        lua.create_function(|lua, args: MultiValue| finish(lua, lua_gmatch(lua, &args)))?;
    let gsub = lua
        .create_function(move |lua, args: MultiValue| finish(lua, lua_gsub(lua, &args, &pcall)))?;
    string.set("find", wrap(lua, find)?)?;
    string.set("match", wrap(lua, match_)?)?;
    string.set("gmatch", wrap(lua, gmatch)?)?;
    string.set("gsub", wrap(lua, gsub)?)
}

/// The Rust function's results, or a marker and what [`raise_results`] should raise.
fn finish(lua: &Lua, outcome: Outcome<MultiValue>) -> LuaResult<MultiValue> {
    let (which, value) = match outcome {
        Ok(values) => return Ok(values),
        Err(Raise::Lua(e)) => return Err(e),
        Err(Raise::Value(value)) => (&RAISE_VALUE, value),
        Err(Raise::Message(message)) => {
            (&RAISE_MESSAGE, Value::String(lua.create_string(message)?))
        }
    };
    Ok(MultiValue::from_iter([marker(which), value]))
}

/// `luaL_argerror`: "bad argument #n to 'name' (...)", counting `self` out of method calls.
fn arg_error(lua: &Lua, arg: usize, function: &str, extra: &str) -> Raise {
    let (name, method) = lua
        .inspect_stack(1, |frame| {
            let names = frame.names();
            (
                names.name.map(|n| n.into_owned()),
                names.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let name = name.unwrap_or_else(|| format!("string.{function}"));
    if method {
        if arg == 1 {
            return Raise::Message(format!("calling '{name}' on bad self ({extra})"));
        }
        return Raise::Message(format!("bad argument #{} to '{name}' ({extra})", arg - 1));
    }
    Raise::Message(format!("bad argument #{arg} to '{name}' ({extra})"))
}

/// `luaL_typename` plus "no value" for a missing argument, as `luaL_typeerror` says it.
fn type_name(value: Option<&Value>) -> &'static str {
    match value {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) => "light userdata",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_checklstring`: a string, or a number converted to one.
fn check_string(lua: &Lua, args: &MultiValue, arg: usize, function: &str) -> Outcome<LuaString> {
    let value = args.get(arg - 1);
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => lua
            .coerce_string(v.clone())?
            .ok_or_else(|| arg_error(lua, arg, function, "string expected, got number")),
        other => Err(arg_error(
            lua,
            arg,
            function,
            &format!("string expected, got {}", type_name(other)),
        )),
    }
}

/// `luaL_optinteger`.
fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    arg: usize,
    function: &str,
    default: i64,
) -> Outcome<i64> {
    let value = args.get(arg - 1);
    let no_integer = || arg_error(lua, arg, function, "number has no integer representation");
    match value {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Integer(i)) => Ok(*i),
        Some(Value::Number(f)) => float_to_integer(*f).ok_or_else(no_integer),
        Some(v @ Value::String(_)) => {
            if let Some(i) = lua.coerce_integer(v.clone())? {
                Ok(i)
            } else if lua.coerce_number(v.clone())?.is_some() {
                Err(no_integer())
            } else {
                Err(arg_error(lua, arg, function, "number expected, got string"))
            }
        }
        other => Err(arg_error(
            lua,
            arg,
            function,
            &format!("number expected, got {}", type_name(other)),
        )),
    }
}

/// A float with an exact integer value in range (Lua's `F2Ieq`).
fn float_to_integer(f: f64) -> Option<i64> {
    // -2^63 is exact as a float; 2^63 is the first value out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.floor() == f && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

fn truthy(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Nil | Value::Boolean(false)))
}

/// The run limit, checked as each call starts: the instruction hook runs only every few
/// thousand instructions, and a loop of budget-sized calls (`pcall(string.find, …)`) would
/// otherwise run for many budgets before it; so a call made past the limit, or after the run
/// was stopped, raises at once.
fn within_run_limit(lua: &Lua) -> Outcome<()> {
    if let Some(clock) = lua.app_data_ref::<Arc<RunClock>>() {
        clock.check()?;
    }
    Ok(())
}

/// A capture as a Lua value: a string, or an integer for a position capture.
pub fn capture_value(lua: &Lua, subject: &[u8], capture: &Capture) -> LuaResult<Value> {
    Ok(match *capture {
        Capture::Text(start, end) => Value::String(lua.create_string(&subject[start..end])?),
        Capture::Position(position) => Value::Integer(position as i64),
    })
}

fn lua_find(lua: &Lua, args: &MultiValue, search: Search, name: &str) -> Outcome<MultiValue> {
    within_run_limit(lua)?;
    let subject = check_string(lua, args, 1, name)?;
    let pattern = check_string(lua, args, 2, name)?;
    let init = opt_integer(lua, args, 3, name, 1)?;
    let plain = search == Search::Find && truthy(args.get(3));
    let (subject, pattern) = (subject.as_bytes(), pattern.as_bytes());
    let init = relative_start(init, subject.len()) - 1;
    let Some(found) = find_aux(&subject, &pattern, init, plain, search, STEP_BUDGET)? else {
        return Ok(MultiValue::from_iter([Value::Nil]));
    };
    let mut out = MultiValue::with_capacity(found.captures.len() + 2);
    if search == Search::Find {
        out.push_back(Value::Integer(found.start as i64 + 1));
        out.push_back(Value::Integer(found.end as i64));
    }
    for capture in &found.captures {
        out.push_back(capture_value(lua, &subject, capture)?);
    }
    Ok(out)
}

/// `string.gmatch(s, pattern, init)`: an iterator over the matches, all of whose calls share
/// one budget.
fn lua_gmatch(lua: &Lua, args: &MultiValue) -> Outcome<MultiValue> {
    let subject = check_string(lua, args, 1, "gmatch")?;
    let pattern = check_string(lua, args, 2, "gmatch")?;
    let init = opt_integer(lua, args, 3, "gmatch", 1)?;
    let len = subject.as_bytes().len();
    // Past the end: the loop below never runs.
    let mut position = (relative_start(init, len) - 1).min(len + 1);
    let mut last_match: Option<usize> = None;
    let mut remaining = STEP_BUDGET;
    let next = lua.create_function_mut(move |lua, ()| {
        let outcome = (|| -> Outcome<MultiValue> {
            within_run_limit(lua)?;
            let (src, pat) = (subject.as_bytes(), pattern.as_bytes());
            let mut ms = MatchState::new(&src, &pat, STEP_BUDGET);
            ms.remaining = remaining;
            let result = gmatch_next(&mut ms, &mut position, &mut last_match);
            remaining = ms.remaining;
            match result? {
                None => Ok(MultiValue::new()),
                Some(captures) => Ok(captures
                    .iter()
                    .map(|c| capture_value(lua, &src, c))
                    .collect::<LuaResult<MultiValue>>()?),
            }
        })();
        finish(lua, outcome)
    })?;
    Ok(MultiValue::from_iter([Value::Function(wrap(lua, next)?)]))
}

/// `gmatch_aux`: the next match at or after `position`, skipping an empty match right at the
/// end of the previous one.
fn gmatch_next(
    ms: &mut MatchState,
    position: &mut usize,
    last_match: &mut Option<usize>,
) -> Result<Option<Vec<Capture>>, PatternError> {
    let mut src = *position;
    while src <= ms.src.len() {
        ms.reprep();
        if let Some(end) = ms.do_match(src, 0)? {
            if Some(end) != *last_match {
                *position = end;
                *last_match = Some(end);
                return ms.captures(Some((src, end))).map(Some);
            }
        }
        src += 1;
    }
    // Nothing more: a later call finds nothing again without searching.
    *position = ms.src.len() + 1;
    Ok(None)
}

/// What `gsub` replaces each match with.
enum Replacement {
    Text(LuaString),
    Table(Table),
    Function(Function),
}

fn lua_gsub(lua: &Lua, args: &MultiValue, pcall: &Function) -> Outcome<MultiValue> {
    within_run_limit(lua)?;
    let subject_value = check_string(lua, args, 1, "gsub")?;
    let pattern = check_string(lua, args, 2, "gsub")?;
    let src = subject_value.as_bytes();
    let max_replacements = opt_integer(lua, args, 4, "gsub", src.len() as i64 + 1)?;
    let replacement = match args.get(2) {
        Some(Value::String(s)) => Replacement::Text(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => Replacement::Text(
            lua.coerce_string(v.clone())?
                .ok_or_else(|| Raise::Message("cannot convert the replacement".into()))?,
        ),
        Some(Value::Table(t)) => Replacement::Table(t.clone()),
        Some(Value::Function(f)) => Replacement::Function(f.clone()),
        other => {
            return Err(arg_error(
                lua,
                3,
                "gsub",
                &format!("string/function/table expected, got {}", type_name(other)),
            ))
        }
    };
    let pat = pattern.as_bytes();
    let anchor = pat.first() == Some(&b'^');
    let pat = if anchor { &pat[1..] } else { &pat[..] };
    let mut ms = MatchState::new(&src, pat, STEP_BUDGET);
    let mut out = Buffer::new(lua);
    let mut changed = false;
    let mut count: i64 = 0;
    let mut s = 0usize;
    let mut last_match: Option<usize> = None;
    while count < max_replacements {
        ms.reprep();
        match ms.do_match(s, 0)? {
            Some(e) if Some(e) != last_match => {
                count += 1;
                changed |= add_value(lua, &ms, &mut out, s, e, &replacement, pcall)?;
                s = e;
                last_match = Some(e);
            }
            _ if s < src.len() => {
                out.push_byte(src[s])?;
                s += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    let result = if changed {
        out.push(&src[s..])?;
        Value::String(out.finish()?)
    } else {
        Value::String(subject_value.clone())
    };
    Ok(MultiValue::from_iter([result, Value::Integer(count)]))
}

/// `add_value`: appends the replacement of the match `s..e`; whether the text changed.
fn add_value(
    lua: &Lua,
    ms: &MatchState,
    out: &mut Buffer,
    s: usize,
    e: usize,
    replacement: &Replacement,
    pcall: &Function,
) -> Outcome<bool> {
    let value = match replacement {
        Replacement::Text(text) => {
            add_text(ms, out, s, e, &text.as_bytes())?;
            return Ok(true);
        }
        Replacement::Table(table) => {
            let key = capture_value(lua, ms.src, &ms.get_capture(0, s, e)?)?;
            table.get::<Value>(key)?
        }
        Replacement::Function(function) => {
            let mut call = MultiValue::new();
            call.push_back(Value::Function(function.clone()));
            for capture in ms.captures(Some((s, e)))? {
                call.push_back(capture_value(lua, ms.src, &capture)?);
            }
            // Through `pcall`, so an error the function raises reaches the caller unchanged.
            let (ok, first) = pcall.call::<(bool, Value)>(call)?;
            if !ok {
                return Err(Raise::Value(first));
            }
            first
        }
    };
    match value {
        Value::Nil | Value::Boolean(false) => {
            out.push(&ms.src[s..e])?; // keep the original text
            Ok(false)
        }
        Value::String(text) => {
            out.push(&text.as_bytes())?;
            Ok(true)
        }
        v @ (Value::Integer(_) | Value::Number(_)) => {
            let text = lua.coerce_string(v)?;
            if let Some(text) = text {
                out.push(&text.as_bytes())?;
            }
            Ok(true)
        }
        other => Err(Raise::Message(format!(
            "invalid replacement value (a {})",
            type_name(Some(&other))
        ))),
    }
}

/// `add_s`: a replacement string with `%0`–`%9` and `%%`.
fn add_text(ms: &MatchState, out: &mut Buffer, s: usize, e: usize, text: &[u8]) -> Outcome<()> {
    let mut rest = text;
    while let Some(at) = rest.iter().position(|&b| b == ESC) {
        out.push(&rest[..at])?;
        // C reads the string's terminating NUL after a final '%'.
        let next = rest.get(at + 1).copied().unwrap_or(0);
        match next {
            ESC => out.push_byte(ESC)?,
            b'0' => out.push(&ms.src[s..e])?,
            b'1'..=b'9' => match ms.get_capture(usize::from(next - b'1'), s, e)? {
                Capture::Text(start, end) => out.push(&ms.src[start..end])?,
                Capture::Position(position) => out.push(position.to_string().as_bytes())?,
            },
            _ => {
                return Err(malformed("invalid use of '%' in replacement string").into());
            }
        }
        rest = &rest[(at + 2).min(rest.len())..];
    }
    out.push(rest)?;
    Ok(())
}

/// How many bytes [`Buffer`] gathers before moving them into a Lua string.
const BUFFER_FLUSH: usize = 64 * 1024;

/// `luaL_Buffer` for `gsub`'s result: the text moves into Lua strings as it grows, so it
/// counts against the state's memory limit as in C, instead of growing without bound on
/// the Rust heap (a replacement such as `("%0"):rep(1e5)` multiplies the subject).
struct Buffer<'l> {
    lua: &'l Lua,
    parts: Vec<LuaString>,
    pending: Vec<u8>,
}

impl<'l> Buffer<'l> {
    fn new(lua: &'l Lua) -> Self {
        Buffer {
            lua,
            parts: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn push_byte(&mut self, byte: u8) -> LuaResult<()> {
        self.pending.push(byte);
        if self.pending.len() >= BUFFER_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> LuaResult<()> {
        if self.pending.len() + bytes.len() < BUFFER_FLUSH {
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        for chunk in bytes.chunks(BUFFER_FLUSH) {
            self.pending.extend_from_slice(chunk);
            if self.pending.len() >= BUFFER_FLUSH {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> LuaResult<()> {
        self.parts.push(self.lua.create_string(&self.pending)?);
        self.pending.clear();
        Ok(())
    }

    /// The whole text as one Lua string. Its parts already fit the memory limit, which so
    /// bounds the one copy made here.
    fn finish(self) -> LuaResult<LuaString> {
        if self.parts.is_empty() {
            return self.lua.create_string(&self.pending);
        }
        let total = self.parts.iter().map(|p| p.as_bytes().len()).sum::<usize>();
        let mut all = Vec::with_capacity(total + self.pending.len());
        for part in &self.parts {
            all.extend_from_slice(&part.as_bytes());
        }
        all.extend_from_slice(&self.pending);
        drop(self.parts);
        self.lua.create_string(&all)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use mlua::{Lua, Table};
    use proptest::prelude::*;

    use super::*;

    /// Calls the string functions in a state and writes down what they return or raise, the
    /// same way for the C functions and for ours.
    const DRIVER: &str = r##"
        local pack, pcall, type, tostring, concat, select, error =
            table.pack, pcall, type, tostring, table.concat, select, error
        local function show(v)
            if type(v) == "table" then return "table" end
            return type(v) .. ":" .. tostring(v)
        end
        local function ser(t)
            local out = {}
            for i = 1, t.n do out[i] = show(t[i]) end
            return concat(out, "|")
        end
        local lookup = { a = "A", b = false, ["1"] = 1, x = {}, ab = 2.5, [1] = "one" }
        local function replace(c, ...)
            if c == "b" then return nil end
            if c == "x" then return true end
            if c == "a1" then error("boom") end
            if c == "aa" then error({}) end
            if c == "1" then return 7 end
            return "<" .. tostring(c) .. select("#", ...) .. ">"
        end
        local D = {}
        function D.find(s, p, init, plain) return ser(pack(pcall(string.find, s, p, init, plain))) end
        function D.match(s, p, init) return ser(pack(pcall(string.match, s, p, init))) end
        function D.gmatch(s, p, init)
            local ok, it = pcall(string.gmatch, s, p, init)
            if not ok then return "error " .. show(it) end
            local out = {}
            for _ = 1, 40 do
                local r = pack(pcall(it))
                out[#out + 1] = ser(r)
                if not r[1] or r[2] == nil then break end
            end
            return concat(out, "\n")
        end
        function D.gsub(s, p, repl, n)
            if repl == "#table" then repl = lookup elseif repl == "#function" then repl = replace end
            return ser(pack(pcall(string.gsub, s, p, repl, n)))
        end
        function D.run(code) return ser(pack(pcall(load(code, "=code")))) end
        return D
    "##;

    fn driver(lua: &Lua) -> Table {
        lua.load(DRIVER).set_name("=driver").eval().unwrap()
    }

    thread_local! {
        /// (the C functions, ours): a state each, reused across cases.
        static STATES: RefCell<Option<(Table, Table, Lua, Lua)>> = const { RefCell::new(None) };
    }

    /// What the C functions and ours say to the same call of driver function `name`.
    fn both(name: &str, args: impl mlua::IntoLuaMulti + Clone) -> (String, String) {
        STATES.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (c, ours, _, _) = cell.get_or_insert_with(|| {
                let c_lua = Lua::new();
                let our_lua = Lua::new();
                install(&our_lua).unwrap();
                (driver(&c_lua), driver(&our_lua), c_lua, our_lua)
            });
            let call = |d: &Table| {
                d.get::<Function>(name)
                    .unwrap()
                    .call::<mlua::BString>(args.clone())
                    .map(|out| format!("{out:?}"))
                    .unwrap()
            };
            (call(c), call(ours))
        })
    }

    fn same(name: &str, args: impl mlua::IntoLuaMulti + Clone) {
        let (c, ours) = both(name, args);
        assert_eq!(ours, c);
    }

    fn run_both(code: &str) -> String {
        let (c, ours) = both("run", code.to_string());
        assert_eq!(ours, c, "for {code}");
        // Readable for the assertions below: the comparison above is on the escaped bytes.
        ours.replace("\\'", "'")
    }

    /// Pieces of patterns: every kind of item, suffix, anchor and malformed end.
    const PATTERN_PIECES: &[&str] = &[
        "a", "b", "1", " ", ".", "%a", "%d", "%s", "%w", "%A", "%p", "%x", "%z", "-", "*", "+",
        "?", "[", "]", "[ab]", "[^a]", "[a-c]", "[%d%s]", "[]]", "[^]a]", "^", "$", "(", ")", "()",
        "%b()", "%bab", "%b", "%f[%w]", "%f[%W]", "%f[a]", "%f", "%1", "%2", "%0", "%", "%%", "%.",
        "%(", "%)", "%]", "\0", "\u{7f}",
    ];
    const SUBJECT_BYTES: &[u8] = b"aab1 ()%.-x]\0\x0b\xff";
    const REPLACEMENTS: &[&str] = &[
        "x",
        "%0",
        "%1",
        "%2",
        "%%",
        "%",
        "%a",
        "[%1|%0]",
        "#table",
        "#function",
        "",
    ];

    fn pattern_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PATTERN_PIECES), 0..7).prop_map(|v| v.concat())
    }

    fn subject_strategy() -> impl Strategy<Value = mlua::BString> {
        prop::collection::vec(prop::sample::select(SUBJECT_BYTES), 0..16)
            .prop_map(mlua::BString::from)
    }

    fn init_strategy() -> impl Strategy<Value = Option<i64>> {
        prop::option::of(-20i64..20)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn find_agrees_with_lua(s in subject_strategy(), p in pattern_strategy(),
                                init in init_strategy(), plain in prop::option::of(any::<bool>())) {
            same("find", (s, p, init, plain));
        }

        #[test]
        fn match_agrees_with_lua(s in subject_strategy(), p in pattern_strategy(), init in init_strategy()) {
            same("match", (s, p, init));
        }

        #[test]
        fn gmatch_agrees_with_lua(s in subject_strategy(), p in pattern_strategy(), init in init_strategy()) {
            same("gmatch", (s, p, init));
        }

        #[test]
        fn gsub_agrees_with_lua(s in subject_strategy(), p in pattern_strategy(),
                                repl in prop::sample::select(REPLACEMENTS),
                                n in prop::option::of(-1i64..4)) {
            same("gsub", (s, p, repl, n));
        }
    }

    #[test]
    fn malformed_patterns_raise_lua_s_messages() {
        for p in [
            "%", "[a", "[^", "[a%", "%b", "%ba", "%f", "%fa", "%1", "(%1)", "(a)%2", "%0", ")",
            "(a", "a)", "((a)",
        ] {
            same("find", ("abc", p));
            same("match", ("abc", p));
            same("gmatch", ("abc", p));
            same("gsub", ("abc", p, "x"));
        }
        let too_many = "()".repeat(33);
        same("find", ("abc", too_many.as_str()));
        let too_deep = "a?".repeat(300);
        let out = run_both(&format!(
            "return string.find(string.rep('a', 300), '{too_deep}')"
        ));
        assert!(out.contains("pattern too complex"), "{out}");
        for code in [
            "return ('abc'):gsub('b', '%')",
            "return ('abc'):gsub('b', '%x')",
            "return ('abc'):gsub('b', '%2')",
            "return ('abc'):gsub('(b)', '%2')",
            "return ('abc'):gsub('b', {b = {}})",
            "return ('abc'):gsub('b', function() return {} end)",
            "return ('abc'):gsub('(b', '%1')",
            "return ('abc'):gsub('(b', function(x) return x end)",
        ] {
            let out = run_both(code);
            assert!(out.starts_with("\"boolean:false"), "{code}: {out}");
        }
    }

    #[test]
    fn errors_name_the_caller_line_and_bad_arguments_as_lua_does() {
        for code in [
            "local s = 'abc'\nreturn s:find('%')",
            "return string.find('abc', '[')",
            "return string.gmatch('abc', '%')()",
            "for w in ('abc'):gmatch('(') do end",
            "return string.find(nil, 'a')",
            "return string.find('a')",
            "return ('a'):find({})",
            "return ('a'):find('a', 1.5)",
            "return ('a'):find('a', '1.5')",
            "return ('a'):find('a', 'x')",
            "return ('a'):find('a', '1')",
            "local f = string.match\nreturn f(true, 'a')",
            "return ('a'):gsub('a')",
            "return ('a'):gsub('a', true)",
            "return ('a'):gsub('a', nil, 'x')",
            "return string.gmatch()",
            "return pcall(string.match, {}, 'a')",
            "return ('abc'):gsub('%w', function(c) error('stop at ' .. c) end)",
            "return ('abc'):gsub('%w', function(c) error(c, 2) end)",
            "return select(2, pcall(string.gsub, 'abc', '%w', function(c) error({c}) end))[1]",
        ] {
            run_both(code);
        }
        let tail_called = run_both("local s = 'abc'\nreturn s:find('%')");
        assert!(
            tail_called.contains("code:2: malformed pattern (ends with '%')"),
            "{tail_called}"
        );
        let method = run_both("return ('a'):find({})");
        assert!(
            method.contains("code:1: bad argument #1 to 'find' (string expected, got table)"),
            "{method}"
        );
    }

    #[test]
    fn numbers_bytes_and_positions_match_lua() {
        for code in [
            "return string.find(12345, 34)",
            "return string.find('a.b', '.', 1, true)",
            "return string.find('a+b', '+', 1, true)",
            "return string.find('abc', '', 10)",
            "return string.find('abc', '', 4)",
            "return string.find('abc', 'c', -1)",
            "return string.find('abc', 'a', -100)",
            "return string.match('key = value', '()(%w+)%s*=%s*(%w+)()')",
            "return string.match('\\0a\\0', '%z(a)%z')",
            "return string.match('x\\vy', 'x%sy')",
            "return string.match('\\xe4\\xb8\\xad', '[\\xe4-\\xe5].')",
            "return string.gsub('hello world', '(%w+)', '<%1>')",
            "return string.gsub('hello world', '%w+', '%0 %0', 1)",
            "return string.gsub('abc', '', '-')",
            "return string.gsub('abc', '^', '-')",
            "return string.gsub('abc', 'b*', '-')",
            "return string.gsub('abc', '()', '%1')",
            "return string.gsub('abc', '%w', {a = 1, b = 2.0, c = 2^63})",
            "return string.gsub('abc', '%w', 'x', 0)",
            "return string.gsub('abc', '%w', 'x', -1)",
            "return string.gsub(123, 2, 9)",
            "local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t+1] = k .. v end return table.concat(t, ',')",
            "local t = {} for w in string.gmatch('abc', '') do t[#t+1] = '.' end return #t",
            "local t = {} for w in string.gmatch('a b c', '%a*') do t[#t+1] = '[' .. w .. ']' end return table.concat(t)",
            "local t = {} for w in string.gmatch('abcd', '%a', 3) do t[#t+1] = w end return table.concat(t)",
            "local t = {} for w in string.gmatch('abcd', '%a', -1) do t[#t+1] = w end return table.concat(t)",
            "local t = {} for w in string.gmatch('abcd', '%a', 10) do t[#t+1] = w end return #t",
            "local t = {} for w in string.gmatch('^a^a', '^a') do t[#t+1] = w end return table.concat(t, ',')",
            "return string.find('THE (quick) fox', '%f[%a]%a+%f[%A]', 5)",
            "return string.find('x(a(b)c)y', '%b()')",
            "return string.gsub('THE (quick) fox', '%f[%a]%u+%f[%A]', string.lower)",
        ] {
            run_both(code);
        }
    }

    #[test]
    fn method_calls_use_the_replaced_functions() {
        let lua = Lua::new();
        install(&lua).unwrap();
        let catastrophic = "local s = ('a'):rep(40000) return select(2, pcall(function() return s:find('^(.-)(.-)!$') end))";
        let message: String = lua.load(catastrophic).eval().unwrap();
        assert!(message.contains("exceeded its budget"), "{message}");
        let ok: (i64, i64, String) = lua.load("return ('x=1'):find('(%d)')").eval().unwrap();
        assert_eq!(ok, (3, 3, "1".into()));
    }

    /// The weak spot of issue 15: each of these ran for seconds inside one C call.
    #[test]
    fn catastrophic_patterns_stop_with_the_budget_error() {
        let lua = Lua::new();
        install(&lua).unwrap();
        for code in [
            "return string.find(('a'):rep(40000), '^(.-)(.-)!$')",
            "return string.match(('a'):rep(40000), '(.-)(.-)(.-)!')",
            "return string.gsub(('a'):rep(40000), '(.*)(.*)!', 'x')",
            "for a in string.gmatch(('a'):rep(40000), '(.-)(.-)!') do end",
            "return string.find(('('):rep(100000), '%b()')",
            "return string.find(('a'):rep(40000), '(.*)%1!')",
        ] {
            let message = lua
                .load(code)
                .set_name("=catastrophe")
                .exec()
                .expect_err(code)
                .to_string();
            assert!(
                message.contains("catastrophe:1: pattern matching exceeded its budget of 10000000 steps (subject of"),
                "{code}: {message}"
            );
        }
        assert_eq!(
            find(&b"a".repeat(40_000), b"^(.-)(.-)!$", 1),
            Err(PatternError::Budget {
                budget: STEP_BUDGET,
                subject_len: 40_000
            })
        );
    }

    /// Ordinary work stays far inside the budget: a gsub over 1 MiB, a find in 64 KiB.
    #[test]
    fn ordinary_work_is_far_inside_the_budget() {
        let text: Vec<u8> = b"hello world, the quick brown fox (jumps) over 12 lazy dogs.\n"
            .iter()
            .copied()
            .cycle()
            .take(1 << 20)
            .collect();
        // The steps of a gsub over the whole subject.
        let steps = |pattern: &[u8], subject: &[u8]| {
            let anchor = pattern.first() == Some(&b'^');
            let pattern = if anchor { &pattern[1..] } else { pattern };
            let mut ms = MatchState::new(subject, pattern, STEP_BUDGET);
            let mut s = 0;
            while s <= subject.len() {
                ms.reprep();
                s = match ms.do_match(s, 0).unwrap() {
                    Some(e) if e > s => e,
                    _ => s + 1,
                };
                if anchor {
                    break;
                }
            }
            STEP_BUDGET - ms.remaining
        };
        for pattern in [
            &b"%s+"[..],
            b"%w+",
            b"(%w+)%s*(%w+)",
            b"%b()",
            b"[%a_][%w_]*",
            b"fox",
        ] {
            let used = steps(pattern, &text);
            eprintln!(
                "{}: {used} steps over 1 MiB",
                String::from_utf8_lossy(pattern)
            );
            assert!(
                used < STEP_BUDGET / 4,
                "{}: {used}",
                String::from_utf8_lossy(pattern)
            );
        }
        let used = steps(b"^(.-)%s*$", &text[..64 * 1024]);
        eprintln!("^(.-)%s*$: {used} steps over 64 KiB");
        assert!(used > 64 * 1024, "the whole text was scanned");
        assert!(used < STEP_BUDGET / 20, "{used}");
    }

    /// The result of `gsub` counts against the memory limit as it grows, as in C, rather
    /// than growing on the Rust heap until the end.
    #[test]
    fn gsub_results_count_against_the_memory_limit() {
        let lua = Lua::new();
        install(&lua).unwrap();
        lua.set_memory_limit(16 * 1024 * 1024).unwrap();
        let err = lua
            .load("return (('x'):rep(1000):gsub('x', ('%0'):rep(20000)))")
            .exec()
            .unwrap_err()
            .to_string();
        assert!(err.contains("memory"), "{err}");
        // It stops as the limit is reached, not after building the whole text (200 MB).
        let calls: i64 = lua
            .load(
                "collectgarbage() local big, calls = ('y'):rep(1000000), 0
                 pcall(string.gsub, ('x'):rep(200), 'x', function() calls = calls + 1 return big end)
                 return calls",
            )
            .eval()
            .unwrap();
        assert!(calls < 20, "{calls}");
        let (len, count): (i64, i64) = lua
            .load("collectgarbage() local s, n = ('xy'):rep(100000):gsub('x', ('%0'):rep(20)) return #s, n")
            .eval()
            .unwrap();
        assert_eq!((len, count), (2_100_000, 100_000));
    }

    #[test]
    fn host_find_returns_positions_and_captures() {
        let found = find(b"weather Paris 3", b"^weather (%S+) (%d+)()$", 1)
            .unwrap()
            .unwrap();
        assert_eq!((found.start, found.end), (0, 15));
        assert_eq!(
            found.captures,
            vec![
                Capture::Text(8, 13),
                Capture::Text(14, 15),
                Capture::Position(16)
            ]
        );
        assert_eq!(find(b"abc", b"x", 1), Ok(None));
        assert_eq!(
            find(b"abc", b"[a", 1),
            Err(PatternError::Malformed(
                "malformed pattern (missing ']')".into()
            ))
        );
    }
}
