//! When each profile refreshes: deadlines from expiries, and the `Clock` that tests move.
