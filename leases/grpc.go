package leases

// GRPCHeader is the gRPC metadata key that carries the lease a call's
// writes belong to, as containerd's clients send it (for pulls, imports,
// mounts); the daemon puts its value on the call's context with WithLease.
const GRPCHeader = "containerd-lease"
