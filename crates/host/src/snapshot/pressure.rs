//! Pressure stall information (`/proc/pressure`).

use serde::{Deserialize, Serialize};

use super::fact;
use crate::parse::pressure;
use crate::{Fact, HostRoot, Psi};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu: Fact<Psi>,
    pub memory: Fact<Psi>,
    pub io: Fact<Psi>,
}

pub(super) fn gather_pressure(root: &HostRoot) -> Pressure {
    Pressure {
        cpu: fact(root, "/proc/pressure/cpu", pressure::parse),
        memory: fact(root, "/proc/pressure/memory", pressure::parse),
        io: fact(root, "/proc/pressure/io", pressure::parse),
    }
}
