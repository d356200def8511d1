//! `/api/workflows/*`: agent orchestration as graphs of typed nodes. This part holds the
//! definitions (CRUD, validation, versions); runs build on it.

pub mod crud;
pub mod definition;

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
}
