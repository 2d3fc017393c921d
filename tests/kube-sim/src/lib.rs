//! kube-sim: a loopback test double (see README).

pub mod exec_stream;
pub mod kubelet;
