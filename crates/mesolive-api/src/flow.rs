//! The three flows of the automation — entry, exit, adjustment — shared by signals, prepare
//! jobs and workflows (and by the hub method and callback names built from them).

use serde::{Deserialize, Serialize};

/// Which flow a signal, a prepare job or a workflow belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Open a position for a strategy on an account (`StartPreparePositionEntry`).
    Entry,
    /// Close a position (`StartPreparePositionExit`).
    Exit,
    /// Adjust a position (`StartPreparePositionAdjustment`).
    Adjustment,
}

impl FlowKind {
    /// Every kind, for building method and callback names.
    pub const ALL: [FlowKind; 3] = [FlowKind::Entry, FlowKind::Exit, FlowKind::Adjustment];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Entry => "entry",
            FlowKind::Exit => "exit",
            FlowKind::Adjustment => "adjustment",
        }
    }

    /// `Entry`, `Exit` or `Adjustment`: the infix of the hub method and event names.
    pub fn infix(self) -> &'static str {
        match self {
            FlowKind::Entry => "Entry",
            FlowKind::Exit => "Exit",
            FlowKind::Adjustment => "Adjustment",
        }
    }
}

/// A stored flow name that is not one of [`FlowKind::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown flow kind {0:?} (expected entry, exit or adjustment)")]
pub struct UnknownFlowKind(pub String);

impl std::str::FromStr for FlowKind {
    type Err = UnknownFlowKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        FlowKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownFlowKind(name.to_owned()))
    }
}

impl TryFrom<String> for FlowKind {
    type Error = UnknownFlowKind;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}
