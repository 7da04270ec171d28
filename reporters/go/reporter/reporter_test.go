package reporter

import (
	"context"
	"io"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// serverCodec is rawCodec for grpc.CustomCodec, which wants String().
type serverCodec struct{ rawCodec }

func (serverCodec) String() string { return "proto" }

// fakeBalancer serves /lookaside.v1.LoadReporter/Report on 127.0.0.1. Each
// stream is handed to handle; it returns the stream's status.
func fakeBalancer(t *testing.T, handle func(n int, ss grpc.ServerStream) error) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var streams int32
	srv := grpc.NewServer(grpc.CustomCodec(serverCodec{}),
		grpc.UnknownServiceHandler(func(_ interface{}, ss grpc.ServerStream) error {
			if m, _ := grpc.MethodFromServerStream(ss); m != reportMethod {
				return status.Error(codes.Unimplemented, m)
			}
			return handle(int(atomic.AddInt32(&streams, 1)), ss)
		}))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func ack(accepted uint64) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 50) // report every 50 ms
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "tok")
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, accepted)
}

// kind is the LoadReport member set in b, and its body.
func kind(t *testing.T, b []byte) (protowire.Number, []byte) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		t.Errorf("not a LoadReport: %x", b)
		return 0, nil
	}
	body, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		t.Errorf("truncated LoadReport: %x", b)
	}
	return num, body
}

func double(body []byte, want protowire.Number) float64 {
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return -1
		}
		body = body[n:]
		if num == want && typ == protowire.Fixed64Type {
			v, _ := protowire.ConsumeFixed64(body)
			return math.Float64frombits(v)
		}
		body = body[protowire.ConsumeFieldValue(num, typ, body):]
	}
	return 0
}

func TestRegisterLoadsDrainClose(t *testing.T) {
	seen := make(chan protowire.Number, 4096) // loads every 50 ms: minutes of room
	eps := make(chan float64, 1)
	addr := fakeBalancer(t, func(_ int, ss grpc.ServerStream) error {
		for n := uint64(1); ; n++ {
			var b []byte
			if err := ss.RecvMsg(&b); err == io.EOF {
				close(seen)
				return nil
			} else if err != nil {
				return err
			}
			k, body := kind(t, b)
			if k == fieldLoad {
				select { // the first load's eps
				case eps <- double(body, 5):
				default:
				}
			}
			seen <- k
			if err := ss.SendMsg(ack(n)); err != nil {
				return err
			}
		}
	})
	r, err := Start(Options{Target: addr, Service: "web", Address: "127.0.0.1:1",
		Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	r.CallStarted()
	r.CallFinished(codes.Internal) // a server error: eps > 0 in the first load
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	if k := <-seen; k != fieldRegister {
		t.Fatalf("first message is %d, want register", k)
	}
	for i := 0; i < 2; i++ { // the first load, then one after the 50 ms interval
		if k := <-seen; k != fieldLoad {
			t.Fatalf("message %d is %d, want load", i+2, k)
		}
	}
	if e := <-eps; e <= 0 {
		t.Errorf("first load: eps = %v, want > 0", e)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var last protowire.Number
	for k := range seen { // loads until the drain, then the half-close
		last = k
	}
	if last != fieldDrain {
		t.Errorf("last message before the half-close is %d, want drain", last)
	}
	if i := r.Info(); !i.Draining || i.Token != "tok" || i.LoadsSent < 2 {
		t.Errorf("info after stop: %+v", i)
	}
}

func TestReconnectsAfterAStreamFails(t *testing.T) {
	addr := fakeBalancer(t, func(n int, ss grpc.ServerStream) error {
		var b []byte
		if err := ss.RecvMsg(&b); err != nil {
			return err
		}
		if n == 1 {
			return status.Error(codes.Unavailable, "not now")
		}
		if err := ss.SendMsg(ack(1)); err != nil {
			return err
		}
		for ss.RecvMsg(&b) == nil {
		}
		return nil
	})
	r, err := Start(Options{Target: addr, Service: "web", Address: "127.0.0.1:1",
		BackoffInitial: 10 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	if i := r.Info(); i.Streams != 2 || status.Code(i.LastError) != codes.Unavailable {
		t.Errorf("info: %+v, want the second stream after an UNAVAILABLE one", i)
	}
	// Stop without a drain ack (this balancer never acks one): ctx ends it.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := r.Stop(short); err != context.DeadlineExceeded {
		t.Errorf("Stop = %v, want DeadlineExceeded", err)
	}
}
