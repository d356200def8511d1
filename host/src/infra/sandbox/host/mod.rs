//! The host capabilities a plugin imports, one file each; every one checks the grant first.

mod config;
mod events;
pub mod http;
mod kv;
mod log;

impl super::wit::types::Host for super::store::PluginState {}
