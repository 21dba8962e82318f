package v2

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// TaskAPI is a shim's task service in the types of task API v2. Version 3
// is the same messages under the service name containerd.task.v3.Task, so
// one set of types serves both.
type TaskAPI = taskapi.TTRPCTaskService

// ttrpcNamespaceKey is the ttrpc metadata key of the namespace, as
// containerd sends it to shims.
const ttrpcNamespaceKey = "containerd-namespace-ttrpc"

// dial connects to a shim's address over ttrpc; onClose runs when the
// connection ends (the shim exited, or Close).
func dial(ctx context.Context, b Bootstrap, ns string, onClose func()) (*ttrpc.Client, TaskAPI, error) {
	addr := strings.TrimPrefix(b.Address, "unix://")
	if strings.Contains(addr, "://") {
		return nil, nil, fmt.Errorf("shim address %q: only unix sockets are supported: %w", b.Address, errdefs.ErrNotImplemented)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to shim at %s: %w: %w", b.Address, err, errdefs.ErrUnavailable)
	}
	client := ttrpc.NewClient(conn, ttrpc.WithOnClose(onClose),
		ttrpc.WithUnaryClientInterceptor(func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoker ttrpc.Invoker) error {
			req.Metadata = append(req.Metadata, &ttrpc.KeyValue{Key: ttrpcNamespaceKey, Value: ns})
			return invoker(ctx, req, resp)
		}))
	if b.Version == 3 {
		return client, &taskV3{c: client}, nil
	}
	return client, taskapi.NewTTRPCTaskClient(client), nil
}

// taskV3 speaks containerd.task.v3.Task with task API v2's messages, which
// are the same on the wire.
type taskV3 struct{ c *ttrpc.Client }

const v3Service = "containerd.task.v3.Task"

func call[Resp any](ctx context.Context, c *ttrpc.Client, method string, req any) (*Resp, error) {
	var resp Resp
	if err := c.Call(ctx, v3Service, method, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (t *taskV3) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	return call[taskapi.StateResponse](ctx, t.c, "State", r)
}
func (t *taskV3) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	return call[taskapi.CreateTaskResponse](ctx, t.c, "Create", r)
}
func (t *taskV3) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	return call[taskapi.StartResponse](ctx, t.c, "Start", r)
}
func (t *taskV3) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	return call[taskapi.DeleteResponse](ctx, t.c, "Delete", r)
}
func (t *taskV3) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	return call[taskapi.PidsResponse](ctx, t.c, "Pids", r)
}
func (t *taskV3) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Pause", r)
}
func (t *taskV3) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Resume", r)
}
func (t *taskV3) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Checkpoint", r)
}
func (t *taskV3) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Kill", r)
}
func (t *taskV3) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Exec", r)
}
func (t *taskV3) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "ResizePty", r)
}
func (t *taskV3) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "CloseIO", r)
}
func (t *taskV3) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Update", r)
}
func (t *taskV3) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	return call[taskapi.WaitResponse](ctx, t.c, "Wait", r)
}
func (t *taskV3) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	return call[taskapi.StatsResponse](ctx, t.c, "Stats", r)
}
func (t *taskV3) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	return call[taskapi.ConnectResponse](ctx, t.c, "Connect", r)
}
func (t *taskV3) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, t.c, "Shutdown", r)
}

var _ TaskAPI = (*taskV3)(nil)
