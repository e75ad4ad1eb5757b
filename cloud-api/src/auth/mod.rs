//! Authentication: password hashes, access tokens, refresh tokens and login throttling.
//!
//! Access is a short-lived JWT naming the user and the session it belongs to; every request
//! also checks that session in the store (revoked? idle for longer than the idle timeout?), so
//! logout and idle expiry take effect at once rather than when the token runs out.

pub mod password;
pub mod throttle;
pub mod token;
