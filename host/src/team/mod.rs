//! `/api/team/*`: team workspaces and their members, the activity feed, and `/api/audit-log`.
//! Every resource belongs to a workspace; membership and role decide what a user may do.

pub mod activity;
pub mod audit;
mod members;
mod workspaces;

use utoipa_axum::router::OpenApiRouter;

pub use audit::record as audit;
pub use workspaces::create_workspace;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(workspaces::router())
        .merge(members::router())
        .merge(audit::router())
        .merge(activity::router())
}
