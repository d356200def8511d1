//! `/api/workflows/*` and `/api/workflow-runs/*`: agent orchestration as graphs of typed
//! nodes. `crud` keeps the definitions (validated as a whole by `definition`, every save a
//! version); `runs` starts and steers runs, which `engine` drives node by node (`nodes`),
//! durably, on any replica, recording how each ended (`outcome`); `triggers` starts runs from
//! events and schedules (`cron`), `hooks` from inbound webhooks.

pub mod crud;
pub mod definition;
pub mod engine;
pub mod hooks;
pub mod nodes;
pub mod outcome;
pub mod runs;
pub mod triggers;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crud::create_workflow, crud::list_workflows))
        .routes(routes!(crud::validate))
        .routes(routes!(
            crud::get_workflow,
            crud::replace_workflow,
            crud::delete_workflow
        ))
        .routes(routes!(crud::list_versions))
        .routes(routes!(runs::start_run))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::resume_run))
        .merge(hooks::router())
}
