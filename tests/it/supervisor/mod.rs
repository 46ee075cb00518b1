//! The daemon process against the simulator: its lifecycle, exactly-once event processing
//! through drops and kills, and the position monitors.

mod exactly_once;
mod lifecycle;
mod monitors;
