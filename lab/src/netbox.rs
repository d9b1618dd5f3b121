//! The netbox emulator.

use axum::Router;

use crate::LabState;

pub fn router(state: LabState) -> Router {
    Router::new().with_state(state)
}
