//! The Nova plugin SDK.
//!
//! The WIT contract and the bindings it wraps arrive with the plugin runtime; until then this
//! crate only pins the API version a plugin is built against.

/// The version of the plugin API this SDK targets.
pub const API_VERSION: &str = "0.1.0";
