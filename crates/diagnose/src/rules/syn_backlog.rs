use crate::context::Ctx;
use sockmedic_model::Finding;

pub fn check(_ctx: &Ctx) -> Vec<Finding> {
    Vec::new()
}
