//! The daemon against a simulator that disagrees: every wire form the simulator plays, alone
//! and in random profiles (`sweep`), arguments bound like a stock ASP.NET Core server
//! (`strict_types`), and `check` naming what it finds (`check`). The scenario they share is
//! `support::wire`.

mod check;
mod strict_types;
mod sweep;
