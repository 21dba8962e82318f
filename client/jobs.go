package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/namespaces"
)

// cancelWait is how long a cancelled RunJob waits for the daemon to say
// how the job ended.
const cancelWait = 10 * time.Second

var runDesc = &grpc.StreamDesc{StreamName: "Run", ServerStreams: true, ClientStreams: true}

// RunJob runs req in the daemon on conn, in ctx's namespace, and returns
// its result: progress, warnings and export data go to env, credential
// questions are answered from env.Credentials, env.Input is streamed for
// an import without a path.
//
// When ctx is cancelled the daemon is asked to cancel the job, and RunJob
// returns how it ended. If this process dies instead, a long job goes on
// in the daemon to its end. env.Input is read by a goroutine that may
// still be blocked in Read when RunJob returns early; close it to end it.
func RunJob(ctx context.Context, conn grpc.ClientConnInterface, req jobs.Request, env jobs.Env) (jobs.Result, error) {
	// Jobs over the whole store (gc, fsck, info) need no namespace; the
	// daemon says so for those that do.
	callCtx := ctx
	if _, ok := namespaces.Namespace(ctx); ok {
		var err error
		if callCtx, err = contentContext(ctx); err != nil {
			return jobs.Result{}, err
		}
	}
	if req.Import != nil && req.Import.Path == "" && env.Input == nil {
		return jobs.Result{}, fmt.Errorf("import: no archive: give a path or an input stream: %w", errdefs.ErrInvalidArgument)
	}
	// The stream lives on its own context: cancelling ctx must reach the
	// daemon as a request to cancel, not as a dropped connection (which
	// leaves the job running). Until the job has started there is nothing
	// to cancel, and cancelling ctx just drops the call.
	sctx, stop := context.WithCancel(context.WithoutCancel(callCtx))
	defer stop()
	connecting := context.AfterFunc(ctx, stop)
	stream, err := conn.NewStream(sctx, runDesc, jobs.RunMethod, grpc.CallContentSubtype(jobs.Codec))
	if err != nil {
		connecting()
		if ctx.Err() != nil {
			return jobs.Result{}, ctx.Err()
		}
		return jobs.Result{}, errgrpc.ToNative(err)
	}
	if !connecting() {
		// Cancelled while connecting: the stream is gone, and no job
		// was started on it.
		return jobs.Result{}, ctx.Err()
	}
	var sendMu sync.Mutex
	send := func(f *jobs.ClientFrame) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.SendMsg(f)
	}
	// From here a cancelled ctx is a Cancel frame (below; AfterFunc on a
	// ctx already done runs at once).
	if err := send(&jobs.ClientFrame{Start: &req}); err != nil {
		return jobs.Result{}, recvErr(stream, err)
	}
	// inputErr is why the input stopped short, if it did.
	var inputErr error
	inputDone := make(chan struct{})
	if req.Import != nil && req.Import.Path == "" {
		go func() {
			defer close(inputDone)
			buf := make([]byte, contentChunk)
			for ctx.Err() == nil {
				n, err := env.Input.Read(buf)
				if n > 0 && ctx.Err() == nil {
					if send(&jobs.ClientFrame{Data: buf[:n]}) != nil {
						return
					}
				}
				if errors.Is(err, io.EOF) {
					send(&jobs.ClientFrame{EOF: true})
					return
				}
				if err != nil {
					// Ending the stream fails the import on the daemon's side.
					inputErr = fmt.Errorf("read the archive: %w", err)
					stop()
					return
				}
			}
		}()
	} else {
		close(inputDone)
	}
	// Cancelling ctx asks the daemon to cancel and gives it a while to
	// say how the job ended (the timer first: the send may wait behind
	// input under flow control).
	cancelled := context.AfterFunc(ctx, func() {
		time.AfterFunc(cancelWait, stop)
		send(&jobs.ClientFrame{Cancel: true})
	})
	defer cancelled()

	var res *jobs.Result
	for {
		var f jobs.ServerFrame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				if res == nil {
					return jobs.Result{}, fmt.Errorf("job %s: the daemon ended it without a result: %w", req.Kind(), errdefs.ErrUnknown)
				}
				return *res, nil
			}
			if ctx.Err() != nil && sctx.Err() != nil {
				return jobs.Result{}, fmt.Errorf("job %s: the daemon did not confirm the cancel in %s: %w", req.Kind(), cancelWait, ctx.Err())
			}
			if sctx.Err() != nil {
				select {
				case <-inputDone: // the input stopped the call
					if inputErr != nil {
						return jobs.Result{}, inputErr
					}
				case <-time.After(time.Second):
				}
			}
			return jobs.Result{}, errgrpc.ToNative(err)
		}
		if env.Progress != nil {
			for _, u := range f.Progress {
				env.Progress.Update(u.Progress())
			}
		}
		switch {
		case f.Credential != "":
			host := f.Credential
			go func() {
				a := jobs.CredentialAnswer{Host: host}
				if env.Credentials != nil {
					user, secret, err := env.Credentials(ctx, host)
					if err != nil {
						a.Error = err.Error()
					}
					a.User, a.Secret = user, secret
				}
				send(&jobs.ClientFrame{Credential: &a})
			}()
		case f.Warn != "":
			if env.Warn != nil {
				env.Warn(f.Warn)
			}
		case len(f.Data) > 0:
			if env.Output == nil {
				return jobs.Result{}, fmt.Errorf("job %s: the daemon sent data nobody asked for: %w", req.Kind(), errdefs.ErrInternal)
			}
			if _, err := env.Output.Write(f.Data); err != nil {
				return jobs.Result{}, err
			}
		case f.Result != nil:
			res = f.Result
		}
	}
}

// recvErr returns the stream's status when a send failed because the
// daemon ended the call.
func recvErr(stream grpc.ClientStream, sendErr error) error {
	if errors.Is(sendErr, io.EOF) {
		var f jobs.ServerFrame
		for {
			if err := stream.RecvMsg(&f); err != nil {
				if errors.Is(err, io.EOF) {
					return sendErr
				}
				return errgrpc.ToNative(err)
			}
		}
	}
	return errgrpc.ToNative(sendErr)
}
