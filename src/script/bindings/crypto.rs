//! `wx.crypto`: digests and HMACs as lower-case hex, and random hex for nonces. The work is
//! done by RustCrypto's `sha1`, `sha2`, `md-5` and `hmac`; this file only checks arguments.

use hmac::{Hmac, Mac};
use mlua::{Lua, Result as LuaResult, Table, Value};
use rand::RngCore;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::{error_at, lua_type};

/// Most random bytes `random_hex` hands out in one call (the hex is twice as long).
const MAX_RANDOM_BYTES: i64 = 1024;

/// The bytes of a string argument (any bytes; numbers are written in decimal as Lua does).
fn bytes_arg(lua: &Lua, fname: &str, what: &str, v: &Value) -> LuaResult<Vec<u8>> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => Ok(v.to_string()?.into_bytes()),
        other => Err(error_at(
            lua,
            format!(
                "{fname}: {what} must be a string, not a {}",
                lua_type(other)
            ),
        )),
    }
}

fn digest_fn<D: Digest>(lua: &Lua, fname: &'static str) -> LuaResult<mlua::Function> {
    lua.create_function(move |lua, s: Value| {
        let data = bytes_arg(lua, fname, "the data", &s)?;
        Ok(hex::encode(D::digest(&data)))
    })
}

fn hmac_fn<M: Mac + hmac::digest::KeyInit>(
    lua: &Lua,
    fname: &'static str,
) -> LuaResult<mlua::Function> {
    lua.create_function(move |lua, (key, s): (Value, Value)| {
        let key = bytes_arg(lua, fname, "the key", &key)?;
        let data = bytes_arg(lua, fname, "the data", &s)?;
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(&key)
            .map_err(|e| error_at(lua, format!("{fname}: {e}")))?;
        mac.update(&data);
        Ok(hex::encode(mac.finalize().into_bytes()))
    })
}

/// Adds `wx.crypto`.
pub fn register(lua: &Lua, wx: &Table) -> LuaResult<()> {
    let crypto = lua.create_table()?;
    crypto.set("sha1", digest_fn::<Sha1>(lua, "wx.crypto.sha1")?)?;
    crypto.set("sha256", digest_fn::<Sha256>(lua, "wx.crypto.sha256")?)?;
    crypto.set("md5", digest_fn::<md5::Md5>(lua, "wx.crypto.md5")?)?;
    crypto.set(
        "hmac_sha256",
        hmac_fn::<Hmac<Sha256>>(lua, "wx.crypto.hmac_sha256")?,
    )?;
    crypto.set(
        "hmac_sha1",
        hmac_fn::<Hmac<Sha1>>(lua, "wx.crypto.hmac_sha1")?,
    )?;
    crypto.set(
        "random_hex",
        lua.create_function(|lua, n: Value| {
            let n = match n {
                Value::Integer(n) if (1..=MAX_RANDOM_BYTES).contains(&n) => n as usize,
                other => {
                    return Err(error_at(
                        lua,
                        format!(
                            "wx.crypto.random_hex: n must be an integer number of bytes in 1..={MAX_RANDOM_BYTES}, not {}",
                            match other {
                                Value::Integer(i) => i.to_string(),
                                other => format!("a {}", lua_type(&other)),
                            }
                        ),
                    ))
                }
            };
            let mut bytes = vec![0u8; n];
            rand::rng().fill_bytes(&mut bytes);
            Ok(hex::encode(bytes))
        })?,
    )?;
    wx.set("crypto", crypto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> String {
        let lua = Lua::new();
        let wx = lua.create_table().unwrap();
        register(&lua, &wx).unwrap();
        lua.globals().set("wx", wx).unwrap();
        lua.load(src)
            .set_name("=t.lua")
            .eval::<String>()
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn digests_match_the_published_test_vectors() {
        assert_eq!(
            eval("return wx.crypto.sha1('abc')"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            eval("return wx.crypto.sha256('abc')"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            eval("return wx.crypto.md5('')"),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        // RFC 4231 test case 2 and its SHA-1 counterpart (RFC 2202 case 2).
        assert_eq!(
            eval("return wx.crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            eval("return wx.crypto.hmac_sha1('Jefe', 'what do ya want for nothing?')"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // Bytes, not text: a NUL and invalid UTF-8 are hashed as they are.
        assert_eq!(
            eval("return wx.crypto.md5('\\0\\255')"),
            hex::encode(md5::Md5::digest([0u8, 255]))
        );
    }

    #[test]
    fn random_hex_and_mistakes() {
        let a = eval("return wx.crypto.random_hex(16)");
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, eval("return wx.crypto.random_hex(16)"));
        assert!(eval("return wx.crypto.random_hex(0)")
            .contains("t.lua:1: wx.crypto.random_hex: n must be"));
        assert!(eval("return wx.crypto.sha1({})")
            .contains("t.lua:1: wx.crypto.sha1: the data must be a string, not a table"));
        assert!(eval("return wx.crypto.hmac_sha1(nil, 'x')").contains("the key must be a string"));
    }
}
