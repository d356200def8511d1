//! The Nova plugin SDK: the bindings of the `nova:plugin` WIT package (`wit/`), wrapped so that
//! a plugin author writes one trait impl (`Guest`) and calls its kind's `export!` macro.
//!
//! ```ignore
//! use nova_plugin_sdk::auto_tagger::{Guest, Scored, Tagging};
//!
//! struct Tagger;
//! impl Guest for Tagger {
//!     fn suggest(_title: String, text: String) -> Result<Tagging, String> {
//!         Ok(Tagging { tags: vec![Scored { name: text, confidence: 1.0 }], categories: vec![] })
//!     }
//! }
//! nova_plugin_sdk::auto_tagger::export!(Tagger);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; enable only the feature of the
//! kind the plugin implements (`default-features = false, features = ["auto-tagger"]`).

/// The version of the plugin API this SDK targets (the WIT package's version).
pub const API_VERSION: &str = "0.1.0";

#[doc(hidden)]
pub use wit_bindgen;

// The export macros name this crate by its name, also from inside it.
extern crate self as nova_plugin_sdk;

// The host capabilities and shared types, generated once; each kind's bindings reuse them.
wit_bindgen::generate!({
    world: "capabilities",
    path: "wit",
    runtime_path: "crate::wit_bindgen::rt",
    generate_all,
});

/// Host capabilities: `log`, `kv`, `config`, `http`, `events`. Each works only when the
/// plugin's manifest asks for it and the admin approved; otherwise it returns an error.
pub mod host {
    pub use crate::nova::plugin::{config, events, http, kv, log};

    /// Logs at info level.
    pub fn info(message: &str) {
        log::write(log::Level::Info, message);
    }
}

pub use nova::plugin::types;

macro_rules! kind {
    ($feature:literal, $module:ident, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[cfg(feature = $feature)]
        #[allow(clippy::too_many_arguments)] // the generated export shims take the ABI's flattened arguments
        pub mod $module {
            wit_bindgen::generate!({
                world: $feature,
                path: "wit",
                runtime_path: "nova_plugin_sdk::wit_bindgen::rt",
                pub_export_macro: true,
                export_macro_name: "export",
                default_bindings_module: $path,
                with: {
                    "nova:plugin/types@0.1.0": crate::nova::plugin::types,
                    "nova:plugin/log@0.1.0": crate::nova::plugin::log,
                    "nova:plugin/kv@0.1.0": crate::nova::plugin::kv,
                    "nova:plugin/config@0.1.0": crate::nova::plugin::config,
                    "nova:plugin/http@0.1.0": crate::nova::plugin::http,
                    "nova:plugin/events@0.1.0": crate::nova::plugin::events,
                },
            });
            pub use crate::host;
            pub use crate::types::*;
        }
    };
}

kind!(
    "integration",
    integration,
    "nova_plugin_sdk::integration",
    "Integrations: `notify` sends a notification to an external service."
);
kind!(
    "automation-action",
    automation_action,
    "nova_plugin_sdk::automation_action",
    "Automation actions: `run` performs an action with the rule's JSON parameters."
);
kind!(
    "webhook-handler",
    webhook_handler,
    "nova_plugin_sdk::webhook_handler",
    "Webhook handlers: `handle` turns an inbound request into events and a response."
);
kind!(
    "auto-tagger",
    auto_tagger,
    "nova_plugin_sdk::auto_tagger",
    "Auto-taggers: `suggest` proposes tags and categories for a document."
);
kind!(
    "analytics-exporter",
    analytics_exporter,
    "nova_plugin_sdk::analytics_exporter",
    "Analytics exporters: `render` turns a report into a file."
);

#[cfg(test)]
mod tests {
    /// The crate carries its own copy of the WIT so it builds wherever it is copied; inside
    /// the repository that copy must be the host's (`wit/`).
    #[test]
    fn the_wit_inside_is_the_repositorys() {
        let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let Ok(repository) = std::fs::read_to_string(crate_dir.join("../wit/nova-plugin.wit"))
        else {
            return;
        };
        let inside = std::fs::read_to_string(crate_dir.join("wit/nova-plugin.wit"))
            .expect("the SDK's wit/nova-plugin.wit");
        assert_eq!(
            inside, repository,
            "plugin-sdk/wit/nova-plugin.wit differs from wit/nova-plugin.wit: copy it over"
        );
    }
}
