//! Brook benchmark tooling. The load generator arrives with the benchmark issue.
