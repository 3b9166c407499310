//! Placeholder; see the node preflight issue.

use super::{Finding, NodeFacts};

pub fn check(_f: &NodeFacts) -> Vec<Finding> {
    vec![]
}
