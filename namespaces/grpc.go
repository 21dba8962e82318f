package namespaces

// GRPCHeader is the gRPC metadata key that carries a call's namespace, as
// containerd's clients send it; the daemon puts its value on the call's
// context with WithNamespace.
const GRPCHeader = "containerd-namespace"
