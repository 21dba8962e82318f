// Package engine is the container lifecycle people use (docker's verbs:
// create, start, attach, wait, stop, kill, rm, ps, inspect, exec), over
// containerd's services: container records (containers.Store), images,
// content, snapshotters by name, leases, the tasks gRPC client and the
// network package's Manager. The same Engine runs over the daemon's
// services (through its socket) or over an in-process server: it always
// talks to tasks through tasksapi.TasksClient.
//
// A container is a container record plus a root filesystem snapshot keyed
// by its ID; what docker shows about it lives in the record's labels
// (labels.Container*): name, published ports, network, volumes, stop
// signal, --rm, start and finish times and the last exit code. A task is
// made per start; a stopped container keeps its record and snapshot.
//
//	e := engine.New(engine.Config{Store: st, Tasks: tc, Network: nm})
//	c, err := e.Create(ctx, engine.CreateOptions{Image: img, Name: "web", Spec: oci.Options{…}})
//	err = e.Start(ctx, c.ID, engine.IO{Stdout: "/tmp/x/out"})
//	code, err := e.Wait(ctx, c.ID)
//	err = e.Stop(ctx, c.ID, 10*time.Second)
//	err = e.Remove(ctx, c.ID, engine.RemoveOptions{})
//
// Every step that fails undoes what the earlier ones made, in reverse
// order: no half-created container, snapshot, task, network namespace,
// veth or rule is left behind.
package engine
