//! coordinator-sim: a loopback test double (see README).
