//! HTTP basic authentication (RFC 7617): the `Authorization` header against the configured
//! user name and password.

use base64::Engine;

/// The user name and password every request must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The `WWW-Authenticate` challenge sent with a 401.
pub(super) const CHALLENGE: &str = "Basic realm=\"kelpie serve\", charset=\"UTF-8\"";

impl Credentials {
    /// Whether `header` (the `Authorization` value, if any) carries these credentials.
    pub(super) fn accept(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(decode) else {
            return false;
        };
        // The user name cannot contain `:`; the password can.
        let Some((username, password)) = given.split_once(':') else {
            return false;
        };
        // Both compared in full whatever the first gives, so timing tells little.
        let user_ok = same(username.as_bytes(), self.username.as_bytes());
        let password_ok = same(password.as_bytes(), self.password.as_bytes());
        user_ok & password_ok
    }
}

/// `user:password` from `Basic <base64>`.
fn decode(header: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Equality that looks at every byte of the longer input.
fn same(a: &[u8], b: &[u8]) -> bool {
    let longest = a.len().max(b.len());
    let mut differ = u8::from(a.len() != b.len());
    for i in 0..longest {
        differ |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            username: "user".into(),
            password: "pa:ss".into(),
        }
    }

    fn basic(plain: &str) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
        format!("Basic {encoded}").into_bytes()
    }

    #[test]
    fn accepts_the_right_pair_only() {
        let c = creds();
        assert!(c.accept(Some(&basic("user:pa:ss"))));
        assert!(c.accept(Some(format!("basic  {}", "dXNlcjpwYTpzcw==").as_bytes())));
        assert!(!c.accept(Some(&basic("user:pa"))));
        assert!(!c.accept(Some(&basic("user:pa:sss"))));
        assert!(!c.accept(Some(&basic("User:pa:ss"))));
        assert!(!c.accept(Some(&basic("userpa:ss"))));
        assert!(!c.accept(Some(b"Bearer dXNlcjpwYTpzcw==")));
        assert!(!c.accept(Some(b"Basic !!!")));
        assert!(!c.accept(None));
    }
}
