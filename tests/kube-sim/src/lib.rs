//! kube-sim: a loopback test double (see README).
