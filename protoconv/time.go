package protoconv

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// TimeToProto converts t, leaving the zero time unset.
func TimeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// TimeFromProto converts ts; unset is the zero time.
func TimeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
